//! What the gateway keeps: sandbox link slots, secrets, and its decisions.

use islo_api::{EventAction, GatewayEventResponse, SecretResponse};
use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, now_rfc3339};

/// Whose decisions.
#[derive(Debug, Clone, Copy)]
pub enum EventScope<'a> {
    /// One sandbox (by id).
    Sandbox(&'a str),
    /// Every sandbox of a tenant (by id).
    Tenant(&'a str),
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub after_id: Option<i64>,
    pub since: Option<String>,
    pub limit: u32,
}

fn event(r: &Row<'_>) -> rusqlite::Result<GatewayEventResponse> {
    Ok(GatewayEventResponse {
        id: r.get(0)?,
        sandbox_id: r.get(1)?,
        at: r.get(2)?,
        scheme: r.get(3)?,
        host: r.get(4)?,
        method: r.get(5)?,
        path: r.get(6)?,
        rule_id: r.get(7)?,
        action: super::closed(r, 8, EventAction::parse, "gateway event action")?,
        status: r.get(9)?,
        bytes_up: r.get::<_, i64>(10)? as u64,
        bytes_down: r.get::<_, i64>(11)? as u64,
        latency_ms: r.get(12)?,
        reason: r.get(13)?,
    })
}

fn secret(r: &Row<'_>) -> rusqlite::Result<SecretResponse> {
    let env: String = r.get(1)?;
    let hosts: String = r.get(4)?;
    let auth: Option<String> = r.get(5)?;
    Ok(SecretResponse {
        name: r.get(0)?,
        env_vars: serde_json::from_str(&env).unwrap_or_default(),
        hosts: serde_json::from_str(&hosts).unwrap_or_default(),
        auth_strategy: auth.and_then(|a| serde_json::from_str(&a).ok()),
        has_value: true,
        created_at: r.get(2)?,
        updated_at: r.get(3)?,
    })
}

/// What a secret is stored with besides its value.
#[derive(Debug, Clone, Default)]
pub struct SecretMeta {
    pub env_vars: Vec<String>,
    pub hosts: Vec<String>,
    pub auth_strategy: Option<islo_api::AuthStrategy>,
}

impl Store {
    /// Give sandbox `id` the lowest free link slot below `max`.
    pub fn allocate_net_slot(&self, id: &str, max: u32) -> Result<u32, StoreError> {
        let node = self.node();
        self.write(|db| {
        let mut stmt = db.prepare(
            "SELECT net_slot FROM sandboxes WHERE net_slot IS NOT NULL AND node = ?1 ORDER BY net_slot",
        )?;
        let used: Vec<u32> = stmt
            .query_map([node], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut slot = 0u32;
        for u in used {
            if u != slot {
                break;
            }
            slot += 1;
        }
        if slot >= max {
            return Err(StoreError::Exhausted(format!(
                "no free sandbox network address: all {max} are in use (widen gateway.subnet)"
            )));
        }
        db.execute(
            "UPDATE sandboxes SET net_slot = ?2 WHERE id = ?1",
            params![id, slot],
        )?;
        Ok(slot)
    })
    }

    /// The live sandbox on link `slot`: its id, tenant and what it was made with.
    pub fn sandbox_on_slot(
        &self,
        slot: u32,
    ) -> Result<Option<(String, String, super::StoredSpec)>, StoreError> {
        let row: Option<(String, String, String)> = self
            .db()
            .query_row(
                "SELECT id, tenant_id, runtime_spec FROM sandboxes WHERE net_slot = ?1 AND deleted_at IS NULL \
                 AND node = ?2",
                params![slot, self.node()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(id, tenant, text)| {
            let stored = super::StoredSpec::parse(&text).map_err(|detail| StoreError::Corrupt {
                what: format!("sandbox {id}"),
                detail,
            })?;
            Ok((id, tenant, stored))
        })
        .transpose()
    }

    /// Whether any live sandbox has a link.
    pub fn any_networked(&self) -> Result<bool, StoreError> {
        Ok(self.db().query_row(
            "SELECT EXISTS (SELECT 1 FROM sandboxes WHERE net_slot IS NOT NULL AND deleted_at IS NULL \
             AND node = ?1)",
            [self.node()],
            |r| r.get(0),
        )?)
    }

    pub fn put_secret(
        &self,
        tenant: &str,
        name: &str,
        value: &str,
        meta: &SecretMeta,
    ) -> Result<(), StoreError> {
        self.write(|db| {
        let now = now_rfc3339();
        let env = serde_json::to_string(&meta.env_vars).unwrap_or_else(|_| "[]".into());
        let hosts = serde_json::to_string(&meta.hosts).unwrap_or_else(|_| "[]".into());
        let auth = meta
            .auth_strategy
            .as_ref()
            .and_then(|a| serde_json::to_string(a).ok());
        db.execute(
            "INSERT INTO secrets (tenant_id, name, value, env_vars, created_at, updated_at, hosts, auth_strategy) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = ?3, env_vars = ?4, updated_at = ?5, \
             hosts = ?6, auth_strategy = ?7",
            params![tenant, name, value, env, now, hosts, auth],
        )?;
        Ok(())
    })
    }

    pub fn secrets(&self, tenant: &str) -> Result<Vec<SecretResponse>, StoreError> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT name, env_vars, created_at, updated_at, hosts, auth_strategy FROM secrets \
             WHERE tenant_id = ?1 ORDER BY name",
        )?;
        let rows = stmt
            .query_map([tenant], secret)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// A secret's value (only the gateway asks).
    pub fn secret_value(&self, tenant: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT value FROM secrets WHERE tenant_id = ?1 AND name = ?2",
                params![tenant, name],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn delete_secret(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.write(|db| {
            Ok(db.execute(
                "DELETE FROM secrets WHERE tenant_id = ?1 AND name = ?2",
                params![tenant, name],
            )? > 0)
        })
    }

    /// Store decisions, each with its tenant (their ids are assigned here).
    pub fn insert_gateway_events(
        &self,
        events: &[(String, GatewayEventResponse)],
    ) -> Result<(), StoreError> {
        self.write(|db| {
        let tx = db;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO gateway_events (tenant_id, sandbox_id, at, scheme, host, method, path, \
                 rule_id, action, status, bytes_up, bytes_down, latency_ms, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for (tenant_id, e) in events {
                stmt.execute(params![
                    tenant_id,
                    e.sandbox_id,
                    e.at,
                    e.scheme,
                    e.host,
                    e.method,
                    e.path,
                    e.rule_id,
                    e.action.as_str(),
                    e.status,
                    e.bytes_up as i64,
                    e.bytes_down as i64,
                    e.latency_ms,
                    e.reason
                ])?;
            }
        }
        Ok(())
    })
    }

    /// Keep only the newest `keep` decisions of a sandbox.
    pub fn trim_gateway_events(&self, sandbox_id: &str, keep: u64) -> Result<usize, StoreError> {
        self.write(|db| {
            Ok(db.execute(
                "DELETE FROM gateway_events WHERE sandbox_id = ?1 AND id <= (SELECT id FROM \
             gateway_events WHERE sandbox_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                params![sandbox_id, keep as i64],
            )?)
        })
    }

    /// Drop decisions made before `before` (RFC 3339).
    pub fn prune_gateway_events(&self, before: &str) -> Result<usize, StoreError> {
        self.write(|db| Ok(db.execute("DELETE FROM gateway_events WHERE at < ?1", [before])?))
    }

    /// Decisions of a sandbox or of a whole tenant, oldest first: after an id, or since a
    /// time, or the last `limit`.
    pub fn gateway_events(
        &self,
        scope: EventScope<'_>,
        f: &EventFilter,
    ) -> Result<Vec<GatewayEventResponse>, StoreError> {
        let db = self.db();
        // After an id: the next ones (following); otherwise the last ones.
        let order = if f.after_id.is_some() { "ASC" } else { "DESC" };
        let (column, key) = match scope {
            EventScope::Sandbox(id) => ("sandbox_id", id),
            EventScope::Tenant(id) => ("tenant_id", id),
        };
        let mut stmt = db.prepare(&format!(
            "SELECT * FROM (SELECT id, sandbox_id, at, scheme, host, method, path, rule_id, action, \
             status, bytes_up, bytes_down, latency_ms, reason FROM gateway_events \
             WHERE {column} = ?1 AND id > ?2 AND at >= ?3 ORDER BY id {order} LIMIT ?4) ORDER BY id"
        ))?;
        let rows = stmt
            .query_map(
                params![
                    key,
                    f.after_id.unwrap_or(0),
                    f.since.as_deref().unwrap_or(""),
                    f.limit
                ],
                event,
            )?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::row;

    #[test]
    fn link_slots_are_the_lowest_free_held_until_deletion_and_run_out_clearly() {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("a").unwrap();
        let rows: Vec<_> = (0..3).map(|i| row(&t, &format!("box-{i}"))).collect();
        for r in &rows {
            s.insert_sandbox(r).unwrap();
        }
        assert_eq!(s.allocate_net_slot(&rows[0].id, 2).unwrap(), 0);
        assert_eq!(s.allocate_net_slot(&rows[1].id, 2).unwrap(), 1);
        let err = s.allocate_net_slot(&rows[2].id, 2).unwrap_err().to_string();
        assert!(
            err.contains("all 2 are in use") && err.contains("gateway.subnet"),
            "{err}"
        );
        assert_eq!(s.sandbox_on_slot(1).unwrap().unwrap().0, rows[1].id);
        // A deleted sandbox frees its slot, and nobody answers on it any more.
        s.mark_deleted(&rows[0].id, "2026-01-01T00:00:00Z").unwrap();
        assert!(s.sandbox_on_slot(0).unwrap().is_none());
        assert_eq!(s.allocate_net_slot(&rows[2].id, 2).unwrap(), 0);
        assert!(s.any_networked().unwrap());
    }
}
