//! Sandboxes started ahead ([`SandboxSpec::ahead`]): made at the host's lowest CPU priority,
//! then handed over to the create that takes them (`Driver::hand_over`).
//!
//! The priority is the calling thread's nice value for as long as the sandbox is made: the
//! runtime, its container's init and the agent are started from that thread and inherit it.
//! The hand-over gives the agent's threads the normal priority again (nothing else runs in a
//! sandbox before it is handed over; what the agent starts later inherits its priority).

use std::path::PathBuf;
use std::sync::Arc;

use super::{OciDriver, ended};
use crate::host::Host;
use crate::{DriverError, SandboxSpec};

/// The nice value a sandbox started ahead is made at.
const AHEAD_NICE: i32 = 19;

/// The calling thread's priority, lowered while this lives (when the spec asks).
pub(super) struct Lowered {
    host: Arc<dyn Host>,
    was: i32,
}

impl Lowered {
    /// Lower the calling thread's priority for the making of `spec` if it is started ahead.
    pub(super) fn for_spec(host: &Arc<dyn Host>, spec: &SandboxSpec) -> Option<Lowered> {
        if !spec.ahead {
            return None;
        }
        match host.nice(None).and_then(|was| {
            host.set_nice(None, AHEAD_NICE)?;
            Ok(was)
        }) {
            Ok(was) => Some(Lowered {
                host: host.clone(),
                was,
            }),
            Err(e) => {
                tracing::warn!(sandbox = %spec.id, error = %e, "starting it ahead at normal priority");
                None
            }
        }
    }
}

impl Drop for Lowered {
    fn drop(&mut self) {
        // The thread goes back to its pool: what it runs next must not run lowered.
        if let Err(e) = self.host.set_nice(None, self.was) {
            tracing::error!(error = %e, "restoring a thread's priority");
        }
    }
}

impl OciDriver {
    /// See `Driver::hand_over`.
    pub(super) fn hand_over_now(
        &self,
        spec: &SandboxSpec,
        hostname: &str,
    ) -> Result<(), DriverError> {
        spec.renamable()?;
        let id = &spec.id;
        // The pidfd keeps the recorded pid its process's while it is reached through /proc.
        let state = self.cfg.runtime_root.join(&id.0);
        let (Some(_held), Some((pid, _))) = (ended::end_notice(&state), ended::recorded(&state))
        else {
            return Err(DriverError::NotFound(id.clone()));
        };
        let uts = PathBuf::from(format!("/proc/{pid}/ns/uts"));
        let what = || format!("handing over {id}");
        self.host
            .set_hostname(&uts, hostname)
            .map_err(DriverError::io(what()))?;
        let tasks = PathBuf::from(format!("/proc/{pid}/task"));
        for t in std::fs::read_dir(&tasks).map_err(DriverError::io(what()))? {
            let tid = t
                .ok()
                .and_then(|t| t.file_name().to_str()?.parse::<u32>().ok());
            if let Some(tid) = tid {
                self.host
                    .set_nice(Some(tid), 0)
                    .map_err(DriverError::io(what()))?;
            }
        }
        Ok(())
    }
}
