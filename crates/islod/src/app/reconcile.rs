//! Start-up reconciliation: finish or undo what a crash interrupted, re-adopt what runs.
//!
//! Each sandbox's record says what it was doing when islod stopped (its `pending_op`); that
//! operation alone is finished or undone. Only an interrupted create is undone by deleting,
//! because that sandbox never existed for its user: nothing that existed before an operation
//! began is deleted by reconciliation, and its records and logs stay.

use std::time::Duration;

use islo_api::SandboxStatus;
use islo_runtime::{Observed, SandboxId, agent};

use super::{App, AppError};
use crate::store::{Op, SandboxRow};

/// How long an adopted sandbox's agent gets to answer before reconciliation decides it is
/// busy rather than gone (a busy agent is adopted; only a dead one is stopped).
const ADOPT_PATIENCE: Duration = Duration::from_secs(5);

/// Why a sandbox whose start was interrupted is stopped.
const START_CUT: &str = "islod stopped while starting it; `islo use NAME` starts it again";

/// What reconciliation did, for the log and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub adopted: usize,
    pub marked_stopped: usize,
    pub undone_creates: usize,
    pub finished_deletes: usize,
    pub thawed: usize,
}

/// How many sandboxes are reconciled at once (most only have their agent pinged).
const RECONCILE_PARALLEL: usize = 16;

/// What reconciliation did to one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Adopted,
    Stopped,
    Undone,
    Deleted,
    /// Nothing to count (left as it was, or marked failed).
    Left,
}

/// What the agent of a running sandbox says.
enum Agent {
    Answers,
    /// Connected but silent within the patience: busy or stopped, not dead.
    Silent,
    /// Nothing listens (or no socket): PID 1 is gone.
    Gone,
}

fn probe(socket: &std::path::Path) -> Agent {
    let deadline = std::time::Instant::now() + ADOPT_PATIENCE;
    loop {
        match agent::ping(socket) {
            Ok(()) => return Agent::Answers,
            Err(islo_agent::proto::ProtoError::Io(e)) if super::watch::nobody_listens(&e) => {
                return Agent::Gone;
            }
            Err(_) if std::time::Instant::now() >= deadline => return Agent::Silent,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl App {
    /// Bring records and the host into agreement. Called once before serving.
    /// All of start-up recovery, in order: sandboxes reconciled ([`App::reconcile`]), then
    /// what an earlier islod left open: recorded sessions are closed (and those ended more
    /// than `retention_days` ago pruned), and setup steps and snapshot saves that were
    /// running are marked failed.
    pub async fn recover(&self, retention_days: u32) -> Result<Reconciled, AppError> {
        let out = self.reconcile().await?;
        self.prune_logs(retention_days)?;
        self.store.fail_unfinished_setup()?;
        let unfinished = self.store.fail_unfinished_snapshots()?;
        if unfinished > 0 {
            tracing::warn!(
                snapshots = unfinished,
                "snapshots left saving by a stop are marked failed"
            );
        }
        Ok(out)
    }

    /// Close sessions that were open when islod stopped; drop those past the retention.
    fn prune_logs(&self, retention_days: u32) -> Result<(), AppError> {
        let now = time::OffsetDateTime::now_utc();
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| AppError::Internal(e.to_string()))
        };
        self.store.end_open_audits(&fmt(now)?)?;
        let before = now - time::Duration::days(i64::from(retention_days));
        let pruned = self.store.prune_audit(&fmt(before)?)?;
        let agents = self
            .store
            .prune_agent_sessions((before.unix_timestamp_nanos() / 1_000_000) as i64)?;
        let decisions = self.store.prune_gateway_events(&fmt(before)?)?;
        if pruned + agents + decisions > 0 {
            tracing::info!(
                sessions = pruned,
                agent_sessions = agents,
                gateway_decisions = decisions,
                days = retention_days,
                "pruned the audit log"
            );
        }
        Ok(())
    }

    /// The runtime is asked once about every sandbox; then each is reconciled, a few at a
    /// time (with a thousand on the host, one by one took seconds).
    pub async fn reconcile(&self) -> Result<Reconciled, AppError> {
        use futures_util::StreamExt;
        let mut out = Reconciled::default();
        let rows = self.store.live_sandboxes()?;
        if let Err(e) = self.reassert_ids(&rows) {
            tracing::error!(error = %e, "claiming the id ranges of sandboxes again");
        }
        let ids: Vec<SandboxId> = rows.iter().map(|r| SandboxId(r.id.clone())).collect();
        let observed = self.blocking(move |d| d.observe_all(&ids)).await?;
        let mut each = futures_util::stream::iter(rows.iter().zip(observed))
            .map(|(row, seen)| self.reconcile_one(row, seen))
            .buffer_unordered(RECONCILE_PARALLEL);
        while let Some(outcome) = each.next().await {
            let (outcome, thawed) = outcome?;
            out.thawed += usize::from(thawed);
            match outcome {
                Outcome::Adopted => out.adopted += 1,
                Outcome::Stopped => out.marked_stopped += 1,
                Outcome::Undone => out.undone_creates += 1,
                Outcome::Deleted => out.finished_deletes += 1,
                Outcome::Left => {}
            }
        }
        drop(each);
        let execs = self.store.fail_running_execs()?;
        tracing::info!(
            adopted = out.adopted,
            stopped = out.marked_stopped,
            undone = out.undone_creates,
            deleted = out.finished_deletes,
            thawed = out.thawed,
            execs_failed = execs,
            "reconciled"
        );
        Ok(out)
    }

    /// `observed`: what the runtime said at the start of reconciliation. What was done, and
    /// whether the sandbox was thawed first.
    async fn reconcile_one(
        &self,
        row: &SandboxRow,
        mut observed: Observed,
    ) -> Result<(Outcome, bool), AppError> {
        let id = SandboxId(row.id.clone());
        let op = self.store.pending_op(&row.id)?;
        match op {
            Some(Op::Create) => {
                self.driven(&id, |d, id| d.destroy(id)).await?;
                self.release_ids(&row.id);
                self.store.remove_sandbox(&row.id)?;
                tracing::warn!(sandbox = %row.name, "undid a create islod did not finish");
                return Ok((Outcome::Undone, false));
            }
            Some(Op::Delete) => {
                self.driven(&id, |d, id| d.destroy(id)).await?;
                self.release_ids(&row.id);
                self.store
                    .mark_deleted(&row.id, &crate::store::now_rfc3339())?;
                tracing::warn!(sandbox = %row.name, "finished a delete islod did not finish");
                return Ok((Outcome::Deleted, false));
            }
            Some(Op::Start | Op::Stop) | None => {}
        }
        if op.is_none() && super::nodes::failed_with_node(row) {
            return self.back_from_lost(row, observed).await;
        }
        let mut thawed = false;
        if observed == Observed::Frozen {
            // Cut while a snapshot was being written: its processes go on.
            self.driven(&id, |d, id| d.thaw(id)).await?;
            tracing::warn!(sandbox = %row.name, "thawed a sandbox frozen by an interrupted save");
            observed = Observed::Running;
            thawed = true;
        }
        let reason = match (op, row.status, observed) {
            (_, _, Observed::Missing) => {
                let gone = Some("its storage is gone");
                self.store
                    .set_status(&row.id, SandboxStatus::Failed, gone, None)?;
                return Ok((Outcome::Left, thawed));
            }
            (Some(Op::Stop), ..) | (None, SandboxStatus::Stopping, _) => None,
            (Some(Op::Start), ..) | (None, SandboxStatus::Starting, _) => {
                Some(START_CUT.replace("NAME", &row.name))
            }
            (None, SandboxStatus::Running, Observed::Running) => {
                match self.probe_agent(&id).await {
                    Agent::Answers | Agent::Silent => return Ok((Outcome::Adopted, thawed)),
                    Agent::Gone => Some(super::watch::AGENT_ENDED.replace("NAME", &row.name)),
                }
            }
            (None, SandboxStatus::Running | SandboxStatus::Paused, Observed::Paused) => {
                // Cut after the checkpoint, before it was recorded (or just paused).
                self.store
                    .set_status(&row.id, SandboxStatus::Paused, None, None)?;
                return Ok((Outcome::Left, thawed));
            }
            (None, SandboxStatus::Paused, Observed::Running) => {
                // Cut after a restore, before it was recorded.
                if let Agent::Answers = self.probe_agent(&id).await {
                    self.store
                        .set_status(&row.id, SandboxStatus::Running, None, None)?;
                    return Ok((Outcome::Adopted, thawed));
                }
                Some("a resume was cut short while islod was not running".to_string())
            }
            (None, SandboxStatus::Paused, _) => {
                Some("its checkpoint is gone; its files are intact".to_string())
            }
            (None, SandboxStatus::Running, _) => {
                Some("its processes ended while islod was not running".to_string())
            }
            (None, SandboxStatus::Stopped, Observed::Running) => {
                self.driven(&id, |d, id| d.stop(id)).await?;
                return Ok((Outcome::Left, thawed));
            }
            _ => return Ok((Outcome::Left, thawed)),
        };
        self.driven(&id, |d, id| d.stop(id)).await?;
        self.store
            .set_status(&row.id, SandboxStatus::Stopped, reason.as_deref(), None)?;
        Ok((Outcome::Stopped, thawed))
    }

    /// This node's sandboxes another node marked `node lost` after this node was back (it
    /// read the list of live nodes just before this one registered again): set right.
    pub(super) async fn set_right_lost(&self) -> Result<(), AppError> {
        for row in self.store.live_sandboxes()? {
            if !super::nodes::failed_with_node(&row) || self.store.pending_op(&row.id)?.is_some() {
                continue;
            }
            let id = SandboxId(row.id.clone());
            let observed = self.driven(&id, |d, id| d.observe(id)).await?;
            self.back_from_lost(&row, observed).await?;
        }
        Ok(())
    }

    /// A sandbox the other nodes marked failed while this node was lost: what it is now.
    async fn back_from_lost(
        &self,
        row: &SandboxRow,
        observed: Observed,
    ) -> Result<(Outcome, bool), AppError> {
        let id = SandboxId(row.id.clone());
        let (status, reason, outcome, thawed) = match observed {
            Observed::Missing => return Ok((Outcome::Left, false)),
            Observed::Paused => (SandboxStatus::Paused, None, Outcome::Left, false),
            Observed::Running | Observed::Frozen => {
                let thawed = observed == Observed::Frozen;
                if thawed {
                    self.driven(&id, |d, id| d.thaw(id)).await?;
                }
                match self.probe_agent(&id).await {
                    Agent::Answers | Agent::Silent => {
                        (SandboxStatus::Running, None, Outcome::Adopted, thawed)
                    }
                    Agent::Gone => {
                        self.driven(&id, |d, id| d.stop(id)).await?;
                        let why = super::watch::AGENT_ENDED.replace("NAME", &row.name);
                        (SandboxStatus::Stopped, Some(why), Outcome::Stopped, thawed)
                    }
                }
            }
            _ => (
                SandboxStatus::Stopped,
                Some("it stopped while its node was lost; its files are intact".to_string()),
                Outcome::Stopped,
                false,
            ),
        };
        self.store
            .set_status(&row.id, status, reason.as_deref(), None)?;
        tracing::info!(sandbox = %row.name, status = status.as_str(), "back from a lost node");
        Ok((outcome, thawed))
    }

    async fn probe_agent(&self, id: &SandboxId) -> Agent {
        let sock = self.driver.agent_socket(id);
        tokio::task::spawn_blocking(move || probe(&sock))
            .await
            .unwrap_or(Agent::Silent)
    }

    /// One back-end call on `id`, off the async threads.
    async fn driven<T: Send + 'static>(
        &self,
        id: &SandboxId,
        f: impl FnOnce(&dyn islo_runtime::Driver, &SandboxId) -> Result<T, islo_runtime::DriverError>
        + Send
        + 'static,
    ) -> Result<T, AppError> {
        let id = id.clone();
        self.blocking(move |d| f(d, &id)).await
    }
}
