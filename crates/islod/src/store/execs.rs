//! Async exec results.

use rusqlite::{OptionalExtension, params};

use islo_api::ExecStatus;

use super::{Store, StoreError, now_rfc3339};

/// A stored exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRow {
    pub id: String,
    pub sandbox_id: String,
    pub status: ExecStatus,
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
}

impl Store {
    pub fn insert_exec(&self, id: &str, sandbox_id: &str) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
            "INSERT INTO execs (id, sandbox_id, status, created_at) VALUES (?1, ?2, 'running', ?3)",
            params![id, sandbox_id, now_rfc3339()],
        )?;
            Ok(())
        })
    }

    pub fn finish_exec(&self, row: &ExecRow) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "UPDATE execs SET status = ?2, exit_code = ?3, stdout = ?4, stderr = ?5, truncated = ?6, finished_at = ?7 WHERE id = ?1",
            params![row.id, row.status.as_str(), row.exit_code, row.stdout, row.stderr, row.truncated, now_rfc3339()],
        )?;
        Ok(())
    })
    }

    pub fn exec(&self, sandbox_id: &str, id: &str) -> Result<Option<ExecRow>, StoreError> {
        let row = self
            .db()
            .query_row(
                "SELECT id, sandbox_id, status, exit_code, stdout, stderr, truncated FROM execs WHERE id = ?1 AND sandbox_id = ?2",
                params![id, sandbox_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<i32>>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, Vec<u8>>(5)?,
                        r.get::<_, bool>(6)?,
                    ))
                },
            )
            .optional()?;
        row.map(
            |(id, sandbox_id, status, exit_code, stdout, stderr, truncated)| {
                let status = ExecStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                    what: format!("exec {id}"),
                    detail: format!("status {status}"),
                })?;
                Ok(ExecRow {
                    id,
                    sandbox_id,
                    status,
                    exit_code,
                    stdout,
                    stderr,
                    truncated,
                })
            },
        )
        .transpose()
    }

    /// Execs that were running when islod stopped can no longer report: mark them failed.
    pub fn fail_running_execs(&self) -> Result<usize, StoreError> {
        self.write(|db| {
            Ok(db.execute(
                "UPDATE execs SET status = 'failed', finished_at = ?1 WHERE status = 'running'",
                [now_rfc3339()],
            )?)
        })
    }
}
