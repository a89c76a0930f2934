//! Tenants, API keys (stored as SHA-256 hashes) and short-lived session tokens.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_rfc3339};

/// An API key as stored (never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub active: bool,
}

const KEY_SELECT: &str = "SELECT k.id, k.name, t.name, k.created_at, k.expires_at, k.active \
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id";

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        tenant: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        active: r.get(5)?,
    })
}

impl Store {
    /// The id of tenant `name`, created if missing.
    pub fn ensure_tenant(&self, name: &str) -> Result<String, StoreError> {
        self.write(|db| {
            if let Some(id) = db
                .query_row("SELECT id FROM tenants WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?
            {
                return Ok(id);
            }
            let id = uuid::Uuid::now_v7().to_string();
            db.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![id, name, now_rfc3339()],
            )?;
            Ok(id)
        })
    }

    /// The id of tenant `name`, if there is one.
    pub fn tenant_id(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT id FROM tenants WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Name of tenant `id`.
    pub fn tenant_name(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT name FROM tenants WHERE id = ?1", [id], |r| r.get(0))
            .optional()?)
    }

    /// Record an API key by its hash; returns the key's id.
    pub fn insert_key(
        &self,
        tenant_id: &str,
        name: &str,
        key_hash: &str,
    ) -> Result<String, StoreError> {
        self.insert_key_until(tenant_id, name, key_hash, None)
    }

    /// Record an API key that stops working at `expires_at` (RFC 3339), if given.
    pub fn insert_key_until(
        &self,
        tenant_id: &str,
        name: &str,
        key_hash: &str,
        expires_at: Option<&str>,
    ) -> Result<String, StoreError> {
        self.write(|db| {
            let id = format!("key_{}", uuid::Uuid::now_v7().simple());
            db.execute(
                "INSERT INTO api_keys (id, tenant_id, name, key_hash, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, tenant_id, name, key_hash, now_rfc3339(), expires_at],
            )?;
            Ok(id)
        })
    }

    /// Keys: (id, tenant name, key name, created).
    pub fn list_keys(&self) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT k.id, t.name, k.name, k.created_at FROM api_keys k JOIN tenants t ON t.id = k.tenant_id ORDER BY k.created_at",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A tenant's keys, oldest first.
    pub fn keys_of(&self, tenant_id: &str) -> Result<Vec<KeyRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "{KEY_SELECT} WHERE k.tenant_id = ?1 ORDER BY k.created_at, k.id"
        ))?;
        let rows = st.query_map([tenant_id], key_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Key `id` of a tenant.
    pub fn key_of(&self, tenant_id: &str, id: &str) -> Result<Option<KeyRow>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!("{KEY_SELECT} WHERE k.tenant_id = ?1 AND k.id = ?2"),
                params![tenant_id, id],
                key_row,
            )
            .optional()?)
    }

    /// Switch key `id` of a tenant on or off (off also ends its session tokens); false when
    /// the tenant has no such key.
    pub fn set_key_active(&self, tenant_id: &str, id: &str, on: bool) -> Result<bool, StoreError> {
        self.write(|db| {
            let n = db.execute(
                "UPDATE api_keys SET active = ?3 WHERE tenant_id = ?1 AND id = ?2",
                params![tenant_id, id, on],
            )?;
            if n == 1 && !on {
                db.execute("DELETE FROM session_tokens WHERE key_id = ?1", [id])?;
            }
            Ok(n == 1)
        })
    }

    /// Delete key `id` of a tenant and its session tokens; false when there is none.
    pub fn delete_key(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        self.write(|db| {
            let n = db.execute(
                "DELETE FROM api_keys WHERE tenant_id = ?1 AND id = ?2",
                params![tenant_id, id],
            )?;
            db.execute("DELETE FROM session_tokens WHERE key_id = ?1", [id])?;
            Ok(n == 1)
        })
    }

    /// `(tenant, key id)` of the working key with this hash: active and not expired at `now`
    /// (RFC 3339).
    pub fn tenant_for_key(
        &self,
        key_hash: &str,
        now: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT tenant_id, id FROM api_keys WHERE key_hash = ?1 AND active = 1 \
                 AND (expires_at IS NULL OR expires_at > ?2)",
                params![key_hash, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Record a session token by its hash, expiring at `expires_at` (unix seconds).
    pub fn insert_token(
        &self,
        token_hash: &str,
        tenant_id: &str,
        key_id: Option<&str>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "DELETE FROM session_tokens WHERE expires_at < ?1",
            [expires_at - 86_400],
        )?;
        db.execute(
            "INSERT INTO session_tokens (token_hash, tenant_id, key_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, tenant_id, key_id, expires_at],
        )?;
        Ok(())
    })
    }

    /// Tenant of an unexpired session token.
    pub fn tenant_for_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT tenant_id FROM session_tokens WHERE token_hash = ?1 AND expires_at > ?2",
                params![token_hash, now],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_tokens() {
        let s = Store::memory().unwrap();
        let a = s.ensure_tenant("a").unwrap();
        assert_eq!(s.ensure_tenant("a").unwrap(), a);
        let k = s.insert_key(&a, "ci", "h1").unwrap();
        let now = "2026-01-01T00:00:00Z";
        assert_eq!(
            s.tenant_for_key("h1", now).unwrap(),
            Some((a.clone(), k.clone()))
        );
        assert_eq!(s.tenant_for_key("h2", now).unwrap(), None);
        s.insert_token("t1", &a, Some(&k), 100).unwrap();
        assert_eq!(s.tenant_for_token("t1", 99).unwrap(), Some(a.clone()));
        assert_eq!(s.tenant_for_token("t1", 100).unwrap(), None);
    }

    #[test]
    fn keys_expire_switch_off_with_their_tokens_and_stay_in_their_tenant() {
        let s = Store::memory().unwrap();
        let (a, b) = (s.ensure_tenant("a").unwrap(), s.ensure_tenant("b").unwrap());
        let k = s
            .insert_key_until(&a, "ci", "h1", Some("2026-06-01T00:00:00Z"))
            .unwrap();
        assert!(
            s.tenant_for_key("h1", "2026-05-31T00:00:00Z")
                .unwrap()
                .is_some()
        );
        assert!(
            s.tenant_for_key("h1", "2026-06-02T00:00:00Z")
                .unwrap()
                .is_none()
        );
        s.insert_token("t1", &a, Some(&k), i64::MAX).unwrap();
        assert!(
            !s.set_key_active(&b, &k, false).unwrap(),
            "another tenant's key"
        );
        assert!(s.tenant_for_token("t1", 0).unwrap().is_some());
        assert!(s.set_key_active(&a, &k, false).unwrap());
        assert!(
            s.tenant_for_token("t1", 0).unwrap().is_none(),
            "its tokens end"
        );
        assert!(
            s.tenant_for_key("h1", "2026-01-01T00:00:00Z")
                .unwrap()
                .is_none()
        );
        assert!(!s.key_of(&a, &k).unwrap().unwrap().active);
        assert!(s.set_key_active(&a, &k, true).unwrap());
        assert!(
            s.tenant_for_key("h1", "2026-01-01T00:00:00Z")
                .unwrap()
                .is_some()
        );
        assert_eq!(s.keys_of(&a).unwrap().len(), 1);
        assert!(s.keys_of(&b).unwrap().is_empty());
        assert!(!s.delete_key(&b, &k).unwrap());
        assert!(s.delete_key(&a, &k).unwrap());
        assert!(s.keys_of(&a).unwrap().is_empty());
    }
}
