//! Agents that end. PID 1 of a sandbox is its agent, and when it ends (the OOM killer, a kill
//! from the host) the sandbox has ended with it. A watchdog notices, takes the sandbox's
//! storage and link down and records it as stopped with the reason, so `islo status` says
//! what happened and the next `islo use` starts it again instead of failing on a refused
//! connection.
//!
//! Where the back end gives one ([`islo_runtime::Driver::end_notice`]), the watchdog holds a
//! pidfd of each running sandbox's PID 1 and learns of its end at once, at no cost while it
//! runs: asking 1,000 agents every two seconds woke 1,000 processes in a burst that slowed
//! whatever else the host was doing. Sandboxes without one (gVisor's) are asked, as before.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use islo_api::SandboxStatus;
use islo_runtime::{Observed, SandboxId};

use super::App;
use crate::store::SandboxRow;

/// How often the watchdog looks for sandboxes started since (and asks agents it holds no
/// notice of).
const EVERY: Duration = Duration::from_secs(2);

/// The reason a sandbox whose agent ended is stopped with.
pub const AGENT_ENDED: &str = "its agent (PID 1) ended, out of memory or killed from outside; \
                               `islo use NAME` starts it again";

/// Whether a failed connection to an agent's socket means PID 1 is gone (its listener was
/// PID 1's), rather than busy or stopped.
pub(super) fn nobody_listens(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
    )
}

/// Whether nothing listens on the agent's socket any more.
fn agent_gone(row: &SandboxRow, app: &App) -> bool {
    let sock = app.driver.agent_socket(&SandboxId(row.id.clone()));
    islo_runtime::agent::connect(&sock).is_err_and(|e| nobody_listens(&e))
}

impl App {
    /// Watch running sandboxes' agents until islod stops.
    pub fn watch_agents(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(async move {
            let mut watched = HashMap::new();
            loop {
                tokio::time::sleep(EVERY).await;
                app.check_agents(&mut watched).await;
            }
        })
    }

    /// Whether a sandbox's agent answers a ping within [`islo_runtime::agent::PING_DEADLINE`];
    /// what a stop or delete asks the agent first is skipped when it does not, so a stopped
    /// agent costs those seconds, not a wait per question.
    pub(super) async fn agent_answers(&self, row: &SandboxRow) -> bool {
        let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
        let ok = tokio::task::spawn_blocking(move || islo_runtime::agent::ping(&sock).is_ok())
            .await
            .unwrap_or(false);
        if !ok {
            tracing::warn!(sandbox = %row.name, "its agent does not answer; its sessions and transcripts are not read");
        }
        ok
    }

    /// Arm an end notice for each running sandbox that has none (started since, or whose
    /// notice fired); drop those of sandboxes no longer running; ask the agents of those the
    /// back end gives no notice of.
    async fn check_agents(self: &Arc<Self>, watched: &mut HashMap<String, JoinHandle<()>>) {
        let ids = match self.store.running_ids() {
            Ok(ids) => ids,
            Err(e) => return tracing::warn!(error = %e, "agent watchdog: reading sandboxes"),
        };
        let running: std::collections::HashSet<String> = ids.into_iter().collect();
        watched.retain(|id, task| {
            let keep = running.contains(id) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        let fresh: Vec<String> = running
            .into_iter()
            .filter(|id| !watched.contains_key(id))
            .collect();
        let app = self.clone();
        let notices = tokio::task::spawn_blocking(move || {
            fresh
                .into_iter()
                .filter_map(|id| app.store.live_sandbox(&id).ok().flatten())
                .map(|r| {
                    let notice = app.driver.end_notice(&SandboxId(r.id.clone()));
                    (r, notice)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (row, notice) in notices {
            // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns it until dropped:
            // the descriptor stays open and its `as_raw_fd` never changes meanwhile.
            let registered = notice.map(|fd| unsafe {
                AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            });
            match registered {
                Some(Ok(fd)) => {
                    let app = self.clone();
                    let id = row.id.clone();
                    let task = tokio::spawn(async move {
                        if fd.readable().await.is_ok() {
                            app.agent_ended(&row).await;
                        }
                    });
                    watched.insert(id, task);
                }
                _ => self.ask_agent(row).await,
            }
        }
    }

    /// Whether a sandbox's agent listens; stop the sandbox if not.
    async fn ask_agent(self: &Arc<Self>, row: SandboxRow) {
        let app = self.clone();
        let probe = row.clone();
        let gone = tokio::task::spawn_blocking(move || agent_gone(&probe, &app))
            .await
            .unwrap_or(false);
        if gone {
            self.agent_ended(&row).await;
        }
    }

    /// Stop a sandbox whose agent ended, unless a lifecycle operation changed it meanwhile or
    /// the runtime still sees it running.
    async fn agent_ended(&self, row: &SandboxRow) {
        let lock = self.op_lock(&row.id);
        let _g = lock.lock().await;
        match self.store.sandbox_by_id(&row.tenant_id, &row.id) {
            Ok(Some(now)) if now.status == SandboxStatus::Running => {}
            _ => return,
        }
        let id = SandboxId(row.id.clone());
        let observed = {
            let id = id.clone();
            self.blocking(move |d| d.observe(&id)).await
        };
        if matches!(observed, Ok(Observed::Running)) && !agent_gone(row, self) {
            return;
        }
        let stopped = self.blocking(move |d| d.stop(&id)).await;
        let (status, reason) = match &stopped {
            Ok(()) => (
                SandboxStatus::Stopped,
                AGENT_ENDED.replace("NAME", &row.name),
            ),
            Err(e) => (
                SandboxStatus::Failed,
                format!("{AGENT_ENDED}; stopping: {e}"),
            ),
        };
        tracing::warn!(sandbox = %row.name, "{reason}");
        if let Err(e) = self.store.set_status(&row.id, status, Some(&reason), None) {
            tracing::warn!(sandbox = %row.name, error = %e, "recording an ended agent");
        }
    }
}
