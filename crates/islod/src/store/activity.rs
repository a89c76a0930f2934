//! When each sandbox with a lifecycle policy was last active and how long it has run since
//! it was created or last resumed, kept so that islod enforces the policy across its restarts.

use std::collections::HashMap;

use rusqlite::params;

use super::{Store, StoreError};

/// A sandbox's activity record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActivityRow {
    /// Last activity, milliseconds since the Unix epoch.
    pub last_active_ms: u64,
    /// Running time since it was created or last resumed.
    pub running_ms: u64,
}

impl Store {
    /// Every record, by sandbox id.
    pub fn activity(&self) -> Result<HashMap<String, ActivityRow>, StoreError> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT sandbox_id, last_active_ms, running_ms FROM sandbox_activity")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                ActivityRow {
                    last_active_ms: r.get::<_, i64>(1)?.max(0) as u64,
                    running_ms: r.get::<_, i64>(2)?.max(0) as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<HashMap<_, _>, _>>()?)
    }

    /// Write these records (one transaction).
    pub fn save_activity(&self, rows: &[(String, ActivityRow)]) -> Result<(), StoreError> {
        self.write(|db| {
            let tx = db;
            for (id, a) in rows {
                tx.execute(
                    "INSERT INTO sandbox_activity (sandbox_id, last_active_ms, running_ms) \
                 VALUES (?1, ?2, ?3) ON CONFLICT (sandbox_id) DO UPDATE SET \
                 last_active_ms = excluded.last_active_ms, running_ms = excluded.running_ms",
                    params![
                        id,
                        i64::try_from(a.last_active_ms).unwrap_or(i64::MAX),
                        i64::try_from(a.running_ms).unwrap_or(i64::MAX)
                    ],
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_update() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        let tenant = s.ensure_tenant("t").unwrap();
        let row = crate::store::tests_support::row(&tenant, "a");
        s.insert_sandbox(&row).unwrap();
        let a = ActivityRow {
            last_active_ms: 5,
            running_ms: 7,
        };
        s.save_activity(&[(row.id.clone(), a)]).unwrap();
        let b = ActivityRow {
            last_active_ms: 9,
            running_ms: 0,
        };
        s.save_activity(&[(row.id.clone(), b)]).unwrap();
        assert_eq!(s.activity().unwrap().get(&row.id), Some(&b));
    }
}
