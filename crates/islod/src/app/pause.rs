//! Pause and resume with memory: a running sandbox's processes checkpointed to its own disk
//! (its memory and CPU freed), and brought back where they were (see the OCI back end's
//! `checkpoint` module for how).

use islo_api::SandboxStatus;

use super::{App, AppError, Tenant};
use crate::store::SandboxRow;

impl App {
    /// `POST /sandboxes/{name}/pause`: only a running sandbox; on error it runs on unchanged.
    pub async fn pause(&self, t: &Tenant, name: &str) -> Result<SandboxRow, AppError> {
        self.pause_because(t, name, None).await
    }

    /// Pause, recording `reason` (a lifecycle policy) as its status reason.
    pub(super) async fn pause_because(
        &self,
        t: &Tenant,
        name: &str,
        reason: Option<&str>,
    ) -> Result<SandboxRow, AppError> {
        let row = self.get(t, name)?;
        let lock = self.op_lock(&row.id);
        let _g = lock.lock().await;
        let row = self.get(t, name)?;
        if row.status != SandboxStatus::Running {
            return Err(AppError::InvalidState {
                name: row.name,
                status: row.status,
                hint: "only a running sandbox can be paused",
            });
        }
        let spec = self.spec_to_start(&row)?;
        let t0 = std::time::Instant::now();
        self.blocking(move |d| d.pause(&spec))
            .await
            .map_err(|e| checkpoint("pausing", &row.name, e))?;
        crate::fault::point("pause.dumped");
        self.store
            .set_status(&row.id, SandboxStatus::Paused, reason, None)?;
        self.clocks_restart(&row.id);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        tracing::info!(sandbox = %row.name, pause_ms = ms, "sandbox paused");
        self.get(t, name)
    }

    /// Bring a paused sandbox back (called by `resume` under the sandbox's lock). A restore
    /// that fails leaves it `failed` with the reason, its files intact for a plain start.
    pub(super) async fn restore_paused(&self, row: &SandboxRow) -> Result<(), AppError> {
        let spec = self.spec_to_start(row)?;
        {
            let _admission = self.op_lock("admission").lock_owned().await;
            self.host_has_room(0)?;
        }
        let t0 = std::time::Instant::now();
        let restored = spec.clone();
        let resumed = self
            .blocking(move |d| d.resume(&restored))
            .await
            .map_err(|e| checkpoint("resuming", &row.name, e));
        crate::fault::point("resume.restored");
        let result = match resumed {
            Ok(()) => self.prepare_link(&spec).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let reason = format!(
                "resuming failed: {e}; its files are intact: `islo stop {0}` then `islo use {0}` \
                 starts it afresh",
                row.name
            );
            self.store
                .set_status(&row.id, SandboxStatus::Failed, Some(&reason), None)?;
            return Err(e);
        }
        self.store
            .set_status(&row.id, SandboxStatus::Running, None, None)?;
        // A resume is activity: an idle policy counts afresh from here.
        self.clocks_restart(&row.id);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        tracing::info!(sandbox = %row.name, resume_ms = ms, "sandbox resumed");
        Ok(())
    }
}

/// A back end's failure to pause or resume, named as such (other errors pass as they are).
fn checkpoint(what: &'static str, name: &str, e: AppError) -> AppError {
    match e {
        AppError::Driver(source) => AppError::Checkpoint {
            what,
            name: name.to_string(),
            source: Box::new(source),
        },
        other => other,
    }
}
