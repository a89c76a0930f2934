//! Environments and their entries (schema v15). An entry's rule is kept as JSON
//! ([`islo_api::EnvironmentRuleResponse`]).

use islo_api::{EntryKind, EntryPlacement, EnvironmentRuleResponse};
use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, now_rfc3339};

/// An environment without its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub is_default: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// One entry, its value included (callers decide what to show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    pub id: String,
    pub key: String,
    pub kind: EntryKind,
    pub placement: EntryPlacement,
    pub value: Option<String>,
    pub rule: Option<EnvironmentRuleResponse>,
    pub created_at: String,
    pub updated_at: String,
}

const ENV_COLUMNS: &str = "id, tenant_id, name, is_default, created_at, updated_at";

fn env_row(r: &Row<'_>) -> rusqlite::Result<EnvRow> {
    Ok(EnvRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        is_default: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

fn entry_row(r: &Row<'_>) -> rusqlite::Result<EntryRow> {
    let rule: Option<String> = r.get(5)?;
    Ok(EntryRow {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: super::closed(r, 2, EntryKind::parse, "environment entry kind")?,
        placement: super::closed(r, 3, EntryPlacement::parse, "environment entry placement")?,
        value: r.get(4)?,
        rule: rule.and_then(|j| serde_json::from_str(&j).ok()),
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

fn insert_entries(
    tx: &super::Tx<'_>,
    env_id: &str,
    entries: &[EntryRow],
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM environment_entries WHERE environment_id = ?1",
        [env_id],
    )?;
    for e in entries {
        let rule = e.rule.as_ref().and_then(|r| serde_json::to_string(r).ok());
        tx.execute(
            "INSERT INTO environment_entries (id, environment_id, key, kind, placement, value, rule, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                e.id,
                env_id,
                e.key,
                e.kind.as_str(),
                e.placement.as_str(),
                e.value,
                rule,
                e.created_at,
                e.updated_at
            ],
        )?;
    }
    Ok(())
}

/// A unique name already in use, as [`StoreError::NameTaken`].
fn taken(e: rusqlite::Error, name: &str) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::NameTaken(name.to_string())
        }
        e => e.into(),
    }
}

impl Store {
    /// Record a new environment with its entries (the tenant's default if it says so).
    pub fn insert_environment(&self, env: &EnvRow, entries: &[EntryRow]) -> Result<(), StoreError> {
        self.write(|db| {
            let tx = db;
            if env.is_default {
                tx.execute(
                    "UPDATE environments SET is_default = 0 WHERE tenant_id = ?1",
                    [&env.tenant_id],
                )?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO environments ({ENV_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    env.id,
                    env.tenant_id,
                    env.name,
                    env.is_default,
                    env.created_at,
                    env.updated_at
                ],
            )
            .map_err(|e| taken(e, &env.name))?;
            insert_entries(tx, &env.id, entries)?;
            Ok(())
        })
    }

    /// Write an environment's name, default flag and (when given) its whole entry set.
    pub fn update_environment(
        &self,
        env: &EnvRow,
        entries: Option<&[EntryRow]>,
    ) -> Result<(), StoreError> {
        self.write(|db| {
            let tx = db;
            if env.is_default {
                tx.execute(
                    "UPDATE environments SET is_default = 0 WHERE tenant_id = ?1 AND id <> ?2",
                    params![env.tenant_id, env.id],
                )?;
            }
            tx.execute(
                "UPDATE environments SET name = ?3, is_default = ?4, updated_at = ?5 \
             WHERE tenant_id = ?1 AND id = ?2",
                params![
                    env.tenant_id,
                    env.id,
                    env.name,
                    env.is_default,
                    now_rfc3339()
                ],
            )
            .map_err(|e| taken(e, &env.name))?;
            if let Some(entries) = entries {
                insert_entries(tx, &env.id, entries)?;
            }
            Ok(())
        })
    }

    pub fn environments(&self, tenant_id: &str) -> Result<Vec<EnvRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {ENV_COLUMNS} FROM environments WHERE tenant_id = ?1 ORDER BY name"
        ))?;
        let rows = st.query_map([tenant_id], env_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A tenant's environment by id or name.
    pub fn environment(
        &self,
        tenant_id: &str,
        reference: &str,
    ) -> Result<Option<EnvRow>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!(
                    "SELECT {ENV_COLUMNS} FROM environments WHERE tenant_id = ?1 \
                     AND (id = ?2 OR name = ?2) ORDER BY id = ?2 DESC LIMIT 1"
                ),
                params![tenant_id, reference],
                env_row,
            )
            .optional()?)
    }

    /// The tenant's default environment.
    pub fn default_environment(&self, tenant_id: &str) -> Result<Option<EnvRow>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!(
                    "SELECT {ENV_COLUMNS} FROM environments WHERE tenant_id = ?1 AND is_default = 1"
                ),
                [tenant_id],
                env_row,
            )
            .optional()?)
    }

    pub fn environment_entries(&self, env_id: &str) -> Result<Vec<EntryRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT id, key, kind, placement, value, rule, created_at, updated_at \
             FROM environment_entries WHERE environment_id = ?1 ORDER BY key",
        )?;
        let rows = st.query_map([env_id], entry_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The entries of a tenant's environment `env_id` (none when it is not the tenant's).
    pub fn tenant_environment_entries(
        &self,
        tenant_id: &str,
        env_id: &str,
    ) -> Result<Vec<EntryRow>, StoreError> {
        match self.environment(tenant_id, env_id)? {
            Some(e) if e.id == env_id => self.environment_entries(env_id),
            _ => Ok(Vec::new()),
        }
    }

    /// Delete a tenant's environment; false when there is none by that id.
    pub fn delete_environment(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        self.write(|db| {
            let n = db.execute(
                "DELETE FROM environments WHERE tenant_id = ?1 AND id = ?2",
                params![tenant_id, id],
            )?;
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(tenant: &str, id: &str, name: &str, default: bool) -> EnvRow {
        EnvRow {
            id: id.into(),
            tenant_id: tenant.into(),
            name: name.into(),
            is_default: default,
            created_at: now_rfc3339(),
            updated_at: now_rfc3339(),
        }
    }

    fn entry(key: &str, kind: EntryKind, placement: EntryPlacement) -> EntryRow {
        EntryRow {
            id: format!("ent_{key}"),
            key: key.into(),
            kind,
            placement,
            value: Some(format!("v-{key}")),
            rule: None,
            created_at: now_rfc3339(),
            updated_at: now_rfc3339(),
        }
    }

    #[test]
    fn one_default_per_tenant_names_unique_entries_replaced() {
        let s = Store::memory().unwrap();
        let (a, b) = (s.ensure_tenant("a").unwrap(), s.ensure_tenant("b").unwrap());
        let v = entry("A", EntryKind::Variable, EntryPlacement::SandboxEnv);
        s.insert_environment(&env(&a, "env_1", "dev", true), std::slice::from_ref(&v))
            .unwrap();
        s.insert_environment(&env(&a, "env_2", "prod", true), &[])
            .unwrap();
        s.insert_environment(&env(&b, "env_3", "dev", true), &[])
            .unwrap();
        assert_eq!(s.default_environment(&a).unwrap().unwrap().id, "env_2");
        assert_eq!(s.default_environment(&b).unwrap().unwrap().id, "env_3");
        let taken = s.insert_environment(&env(&a, "env_4", "dev", false), &[]);
        assert!(matches!(taken, Err(StoreError::NameTaken(_))));
        assert_eq!(s.environment(&a, "dev").unwrap().unwrap().id, "env_1");
        assert_eq!(s.environment(&a, "env_1").unwrap().unwrap().name, "dev");
        assert!(s.environment(&b, "env_1").unwrap().is_none());
        assert_eq!(s.environment_entries("env_1").unwrap(), [v]);
        let sec = entry("T", EntryKind::Secret, EntryPlacement::GatewayInjected);
        let mut e1 = env(&a, "env_1", "dev2", true);
        e1.created_at.clear();
        s.update_environment(&e1, Some(std::slice::from_ref(&sec)))
            .unwrap();
        assert_eq!(s.environment_entries("env_1").unwrap(), [sec]);
        assert_eq!(s.default_environment(&a).unwrap().unwrap().name, "dev2");
        assert!(
            s.tenant_environment_entries(&b, "env_1")
                .unwrap()
                .is_empty()
        );
        assert!(!s.delete_environment(&b, "env_1").unwrap());
        assert!(s.delete_environment(&a, "env_1").unwrap());
        assert!(s.environment_entries("env_1").unwrap().is_empty());
    }
}
