//! Handing a sandbox started ahead to the create that claims it (see `app/warm.rs`).

use rusqlite::params;

use super::{SandboxRow, Store, StoreError};

impl Store {
    /// Pass running sandbox `row.id`, held by tenant `from`, to `row.tenant_id` as `row`
    /// describes it (name, image as the caller wrote it, env, workdir, request, spec, times).
    /// `Ok(false)` when it is no longer `from`'s to give, or not running, or busy with an
    /// operation (another create took it, or it is being removed); `NameTaken` when the
    /// tenant already has a sandbox of that name.
    pub fn claim_warm(&self, from: &str, row: &SandboxRow) -> Result<bool, StoreError> {
        self.write(|db| {
            let env = serde_json::to_string(&row.env).unwrap_or_else(|_| "{}".into());
            let res = db.execute(
                "UPDATE sandboxes SET tenant_id = ?3, name = ?4, env = ?5, workdir = ?6, \
                 runtime_spec = ?7, request_id = ?8, request_hash = ?9, created_at = ?10, \
                 started_at = ?11, image = ?12 \
                 WHERE id = ?1 AND tenant_id = ?2 AND status = 'running' AND deleted_at IS NULL \
                 AND pending_op IS NULL",
                params![
                    row.id,
                    from,
                    row.tenant_id,
                    row.name,
                    env,
                    row.workdir,
                    row.stored.text(),
                    row.request_id,
                    row.request_hash,
                    row.created_at,
                    row.started_at,
                    row.image
                ],
            );
            match res {
                Ok(n) => Ok(n == 1),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::NameTaken(row.name.clone()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }
}
