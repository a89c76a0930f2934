//! Setup steps of sandboxes and how they went.

use islo_api::SetupStepResult;
use rusqlite::params;

use super::{Store, StoreError};

impl Store {
    /// Record a sandbox's steps, all `pending`.
    pub fn insert_setup_steps(&self, sandbox_id: &str, names: &[String]) -> Result<(), StoreError> {
        self.write(|db| {
        let tx = db;
        for (i, n) in names.iter().enumerate() {
            tx.execute(
                "INSERT INTO setup_steps (sandbox_id, idx, name, status) VALUES (?1, ?2, ?3, 'pending')",
                params![sandbox_id, i as i64, n],
            )?;
        }
        Ok(())
    })
    }

    /// Update one step.
    pub fn set_setup_step(
        &self,
        sandbox_id: &str,
        idx: usize,
        r: &SetupStepResult,
    ) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "UPDATE setup_steps SET status = ?3, stdout = ?4, stderr = ?5, exit_code = ?6, exec_id = ?7 \
             WHERE sandbox_id = ?1 AND idx = ?2",
            params![sandbox_id, idx as i64, r.status.as_str(), r.stdout, r.stderr, r.exit_code, r.exec_id],
        )?;
        Ok(())
    })
    }

    /// A sandbox's steps in order (empty when it had none).
    pub fn setup_steps(&self, sandbox_id: &str) -> Result<Vec<SetupStepResult>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT name, status, stdout, stderr, exit_code, exec_id FROM setup_steps \
             WHERE sandbox_id = ?1 ORDER BY idx",
        )?;
        let rows = st.query_map([sandbox_id], |r| {
            Ok(SetupStepResult {
                name: r.get(0)?,
                status: {
                    let text: String = r.get(1)?;
                    islo_api::SetupStepStatus::parse(&text).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            1,
                            rusqlite::types::Type::Text,
                            format!("setup step status {text:?}").into(),
                        )
                    })?
                },
                stdout: r.get(2)?,
                stderr: r.get(3)?,
                exit_code: r.get(4)?,
                exec_id: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Steps left `pending` or `running` by a stop can never finish.
    pub fn fail_unfinished_setup(&self) -> Result<usize, StoreError> {
        self.write(|db| {
        Ok(db.execute(
            "UPDATE setup_steps SET status = CASE status WHEN 'running' THEN 'failed' ELSE 'skipped' END, \
             stderr = COALESCE(stderr, '') || CASE status WHEN 'running' THEN 'islod stopped during this step' ELSE '' END \
             WHERE status IN ('pending', 'running')",
            rusqlite::params![],
        )?)
    })
    }
}
