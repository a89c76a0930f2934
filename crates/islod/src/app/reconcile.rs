//! Start-up reconciliation: finish or undo what a crash interrupted, re-adopt what runs.

use islo_api::SandboxStatus;
use islo_runtime::{Observed, SandboxId, agent};

use super::{App, AppError};

/// What reconciliation did, for the log and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub adopted: usize,
    pub marked_stopped: usize,
    pub undone_creates: usize,
}

impl App {
    /// Bring records and the host into agreement. Called once before serving.
    pub async fn reconcile(&self) -> Result<Reconciled, AppError> {
        let mut out = Reconciled::default();
        for row in self.store.live_sandboxes()? {
            let id = SandboxId(row.id.clone());
            let observed = {
                let id = id.clone();
                self.blocking(move |d| d.observe(&id)).await?
            };
            match (row.status, observed) {
                (SandboxStatus::Starting, _) => {
                    let id = id.clone();
                    self.blocking(move |d| d.destroy(&id)).await?;
                    self.store.remove_sandbox(&row.id)?;
                    out.undone_creates += 1;
                }
                (SandboxStatus::Running, Observed::Running)
                    if agent::ping(&self.driver.agent_socket(&id)).is_ok() =>
                {
                    out.adopted += 1;
                }
                (
                    SandboxStatus::Running | SandboxStatus::Stopping,
                    Observed::Running | Observed::Stopped,
                ) => {
                    let reason = (row.status == SandboxStatus::Running)
                        .then_some("its processes ended while islod was not running");
                    let id = id.clone();
                    self.blocking(move |d| d.stop(&id)).await?;
                    self.store
                        .set_status(&row.id, SandboxStatus::Stopped, reason, None)?;
                    out.marked_stopped += 1;
                }
                (SandboxStatus::Stopped, Observed::Running) => {
                    let id = id.clone();
                    self.blocking(move |d| d.stop(&id)).await?;
                }
                (
                    SandboxStatus::Running | SandboxStatus::Stopped | SandboxStatus::Stopping,
                    Observed::Missing,
                ) => {
                    self.store.set_status(
                        &row.id,
                        SandboxStatus::Failed,
                        Some("its storage is gone"),
                        None,
                    )?;
                }
                _ => {}
            }
        }
        let execs = self.store.fail_running_execs()?;
        tracing::info!(
            adopted = out.adopted,
            stopped = out.marked_stopped,
            undone = out.undone_creates,
            execs_failed = execs,
            "reconciled"
        );
        Ok(out)
    }
}
