//! Sessions that a stop ended: the agent that held them is gone, islod remembers them.

use rusqlite::params;

use super::{Store, StoreError};

impl Store {
    /// Remember that `name` (started at `started_at_ms`) ended with its sandbox.
    pub fn record_ended_session(
        &self,
        sandbox_id: &str,
        name: &str,
        started_at_ms: u64,
    ) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "INSERT OR REPLACE INTO ended_sessions (sandbox_id, name, started_at_ms) VALUES (?1, ?2, ?3)",
            params![sandbox_id, name, started_at_ms as i64],
        )?;
        Ok(())
    })
    }

    /// Ended sessions of a sandbox: (name, started_at_ms).
    pub fn ended_sessions(&self, sandbox_id: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT name, started_at_ms FROM ended_sessions WHERE sandbox_id = ?1 ORDER BY started_at_ms")?;
        let rows = st.query_map([sandbox_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?.unwrap_or(0) as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forget an ended session; `false` when there was none.
    pub fn forget_ended_session(&self, sandbox_id: &str, name: &str) -> Result<bool, StoreError> {
        self.write(|db| {
            Ok(db.execute(
                "DELETE FROM ended_sessions WHERE sandbox_id = ?1 AND name = ?2",
                params![sandbox_id, name],
            )? > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::sandboxes::tests::row;
    use super::*;

    #[test]
    fn ended_sessions_round_trip() {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("a").unwrap();
        let sb = row(&t, "box");
        s.insert_sandbox(&sb).unwrap();
        s.record_ended_session(&sb.id, "main", 5).unwrap();
        s.record_ended_session(&sb.id, "main", 6).unwrap();
        assert_eq!(
            s.ended_sessions(&sb.id).unwrap(),
            vec![("main".to_string(), 6)]
        );
        assert!(s.forget_ended_session(&sb.id, "main").unwrap());
        assert!(!s.forget_ended_session(&sb.id, "main").unwrap());
    }
}
