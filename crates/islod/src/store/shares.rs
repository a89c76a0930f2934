//! Shares of sandbox ports and the requests served through them (schema v13).

use islo_api::ShareRequestRecord;
use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};

/// A share as stored. `token` is the URL's secret part; `expires_at` is RFC 3339 (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    pub id: String,
    pub sandbox_id: String,
    pub token: String,
    pub port: u16,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

const COLUMNS: &str = "id, sandbox_id, token, port, created_at, expires_at, revoked_at";

fn share(r: &Row<'_>) -> rusqlite::Result<ShareRow> {
    Ok(ShareRow {
        id: r.get(0)?,
        sandbox_id: r.get(1)?,
        token: r.get(2)?,
        port: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

fn record(r: &Row<'_>) -> rusqlite::Result<ShareRequestRecord> {
    Ok(ShareRequestRecord {
        id: r.get(0)?,
        share_id: r.get(1)?,
        at: r.get(2)?,
        client: r.get(3)?,
        user_agent: r.get(4)?,
        method: r.get(5)?,
        path: r.get(6)?,
        status: r.get(7)?,
        bytes_in: r.get::<_, i64>(8)? as u64,
        bytes_out: r.get::<_, i64>(9)? as u64,
    })
}

impl Store {
    pub fn insert_share(&self, s: &ShareRow) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
                "INSERT INTO shares (id, sandbox_id, token, port, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    s.id,
                    s.sandbox_id,
                    s.token,
                    s.port,
                    s.created_at,
                    s.expires_at
                ],
            )?;
            Ok(())
        })
    }

    /// The shares of a sandbox not revoked (expired ones included: the caller compares).
    pub fn shares_of(&self, sandbox_id: &str) -> Result<Vec<ShareRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {COLUMNS} FROM shares WHERE sandbox_id = ?1 AND revoked_at IS NULL \
             ORDER BY created_at, id"
        ))?;
        let rows = st.query_map([sandbox_id], share)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The share whose URL carries `token`, revoked or not.
    pub fn share_by_token(&self, token: &str) -> Result<Option<ShareRow>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!("SELECT {COLUMNS} FROM shares WHERE token = ?1"),
                [token],
                share,
            )
            .optional()?)
    }

    /// Revoke share `id` of a sandbox; false when it has none by that id (or it was revoked).
    pub fn revoke_share(&self, sandbox_id: &str, id: &str, at: &str) -> Result<bool, StoreError> {
        self.write(|db| {
        let n = db.execute(
            "UPDATE shares SET revoked_at = ?3 WHERE sandbox_id = ?1 AND id = ?2 AND revoked_at IS NULL",
            params![sandbox_id, id, at],
        )?;
        Ok(n == 1)
    })
    }

    /// Revoke every share of a sandbox (it is being removed); their ids.
    pub fn revoke_shares_of(&self, sandbox_id: &str, at: &str) -> Result<Vec<String>, StoreError> {
        self.write(|db| {
        let mut st = db.prepare(
            "SELECT id FROM shares WHERE sandbox_id = ?1 AND revoked_at IS NULL ORDER BY created_at, id",
        )?;
        let ids = st
            .query_map([sandbox_id], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        db.execute(
            "UPDATE shares SET revoked_at = ?2 WHERE sandbox_id = ?1 AND revoked_at IS NULL",
            params![sandbox_id, at],
        )?;
        Ok(ids)
    })
    }

    pub fn insert_share_request(&self, r: &ShareRequestRecord) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
            "INSERT INTO share_requests (share_id, at, client, user_agent, method, path, status, \
             bytes_in, bytes_out) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                r.share_id,
                r.at,
                r.client,
                r.user_agent,
                r.method,
                r.path,
                r.status,
                r.bytes_in as i64,
                r.bytes_out as i64
            ],
        )?;
            Ok(())
        })
    }

    /// Requests served through share `id` of a sandbox, oldest first, at most `limit`.
    pub fn share_requests(
        &self,
        sandbox_id: &str,
        id: &str,
        limit: u32,
    ) -> Result<Option<Vec<ShareRequestRecord>>, StoreError> {
        let db = self.db();
        let known: Option<String> = db
            .query_row(
                "SELECT id FROM shares WHERE sandbox_id = ?1 AND id = ?2",
                params![sandbox_id, id],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Ok(None);
        }
        let mut st = db.prepare(
            "SELECT id, share_id, at, client, user_agent, method, path, status, bytes_in, bytes_out \
             FROM share_requests WHERE share_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let mut rows: Vec<ShareRequestRecord> = st
            .query_map(params![id, limit], record)?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        Ok(Some(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, token: &str) -> ShareRow {
        ShareRow {
            id: id.into(),
            sandbox_id: "sb1".into(),
            token: token.into(),
            port: 8080,
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-02T00:00:00Z".into(),
            revoked_at: None,
        }
    }

    fn store() -> Store {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("t").unwrap();
        let mut sb = crate::store::tests_support::row(&t, "one");
        sb.id = "sb1".into();
        s.insert_sandbox(&sb).unwrap();
        s
    }

    #[test]
    fn shares_are_listed_found_by_token_and_revoked() {
        let s = store();
        s.insert_share(&row("sh_a", "tok_a")).unwrap();
        s.insert_share(&row("sh_b", "tok_b")).unwrap();
        assert_eq!(s.shares_of("sb1").unwrap().len(), 2);
        assert_eq!(s.share_by_token("tok_b").unwrap().unwrap().id, "sh_b");
        assert!(s.share_by_token("nope").unwrap().is_none());
        assert!(s.revoke_share("sb1", "sh_a", "now").unwrap());
        assert!(!s.revoke_share("sb1", "sh_a", "now").unwrap(), "once");
        assert!(
            !s.revoke_share("other", "sh_b", "now").unwrap(),
            "another sandbox's id"
        );
        let left: Vec<String> = s
            .shares_of("sb1")
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, ["sh_b"]);
        assert!(
            s.share_by_token("tok_a")
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert_eq!(s.revoke_shares_of("sb1", "now").unwrap(), ["sh_b"]);
        assert!(s.shares_of("sb1").unwrap().is_empty());
    }

    #[test]
    fn requests_are_recorded_per_share() {
        let s = store();
        s.insert_share(&row("sh_a", "tok_a")).unwrap();
        let rec = ShareRequestRecord {
            id: 0,
            share_id: "sh_a".into(),
            at: "2026-01-01T00:00:01Z".into(),
            client: "127.0.0.1:5000".into(),
            user_agent: Some("curl".into()),
            method: "GET".into(),
            path: "/x".into(),
            status: 200,
            bytes_in: 0,
            bytes_out: 12,
        };
        for _ in 0..3 {
            s.insert_share_request(&rec).unwrap();
        }
        let got = s.share_requests("sb1", "sh_a", 2).unwrap().unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].id < got[1].id, "oldest first");
        assert_eq!(got[1].bytes_out, 12);
        assert!(s.share_requests("sb1", "sh_zz", 10).unwrap().is_none());
    }
}
