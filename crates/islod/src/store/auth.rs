//! Tenants, API keys (stored as SHA-256 hashes) and short-lived session tokens.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_rfc3339};

impl Store {
    /// The id of tenant `name`, created if missing.
    pub fn ensure_tenant(&self, name: &str) -> Result<String, StoreError> {
        let db = self.db();
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
        let id = uuid::Uuid::now_v7().to_string();
        self.db().execute(
            "INSERT INTO api_keys (id, tenant_id, name, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, tenant_id, name, key_hash, now_rfc3339()],
        )?;
        Ok(id)
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

    /// Tenant owning the key with this hash.
    pub fn tenant_for_key(&self, key_hash: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT tenant_id FROM api_keys WHERE key_hash = ?1",
                [key_hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Record a session token by its hash, expiring at `expires_at` (unix seconds).
    pub fn insert_token(
        &self,
        token_hash: &str,
        tenant_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let db = self.db();
        db.execute(
            "DELETE FROM session_tokens WHERE expires_at < ?1",
            [expires_at - 86_400],
        )?;
        db.execute(
            "INSERT INTO session_tokens (token_hash, tenant_id, expires_at) VALUES (?1, ?2, ?3)",
            params![token_hash, tenant_id, expires_at],
        )?;
        Ok(())
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
        s.insert_key(&a, "ci", "h1").unwrap();
        assert_eq!(s.tenant_for_key("h1").unwrap(), Some(a.clone()));
        assert_eq!(s.tenant_for_key("h2").unwrap(), None);
        s.insert_token("t1", &a, 100).unwrap();
        assert_eq!(s.tenant_for_token("t1", 99).unwrap(), Some(a));
        assert_eq!(s.tenant_for_token("t1", 100).unwrap(), None);
    }
}
