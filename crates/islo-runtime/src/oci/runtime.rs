//! What the driver asks of an OCI runtime's command line, and how it reads the answers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{OciDriver, gvisor};
use crate::host::Host;
use crate::{DriverError, Isolation, Observed, SandboxId};

impl OciDriver {
    pub(super) fn runtime_cmd(&self, dir: &Path, args: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["--root".into(), self.cfg.runtime_root.clone().into()];
        v.push("--log".into());
        v.push(dir.join("runtime.log").into());
        v.extend(args.iter().map(OsString::from));
        v
    }

    /// The runtime program and arguments for `args` on the sandbox in `dir`, by its class.
    pub(super) fn command(
        &self,
        dir: &Path,
        args: &[&str],
    ) -> Result<(PathBuf, Vec<OsString>), DriverError> {
        match gvisor::class_of(dir) {
            Isolation::Container => Ok((self.program.clone(), self.runtime_cmd(dir, args))),
            Isolation::Gvisor => {
                let r = self.runsc()?;
                Ok((r.program.clone(), r.args(dir, args)))
            }
        }
    }

    /// Run `args` with the sandbox's runtime.
    pub(super) fn run_runtime(
        &self,
        id: &SandboxId,
        args: &[&str],
    ) -> Result<crate::host::RunOutput, DriverError> {
        let dir = self.dir(id);
        let (program, args) = self.command(&dir, args)?;
        let io = DriverError::io(program.display().to_string());
        if gvisor::class_of(&dir) == Isolation::Gvisor
            && let Some(out) = self.run_in_sandbox_netns(id, &program, &args)
        {
            return out.map_err(io);
        }
        self.host.run(&program, &args).map_err(io)
    }

    /// Run a runsc command from the sandbox's network namespace, where its sandbox's control
    /// socket (an abstract one) is; `None` when the sandbox has none pinned (not running).
    fn run_in_sandbox_netns(
        &self,
        id: &SandboxId,
        program: &Path,
        args: &[OsString],
    ) -> Option<std::io::Result<crate::host::RunOutput>> {
        let pin = self.dir(id).join(super::MOUNT_NS);
        if !pin.exists() {
            return None;
        }
        let netns = super::net::netns_path(id);
        let ran = self.in_ns(id, false, || {
            netns
                .exists()
                .then(|| self.host.run_in_netns(&netns, program, args))
        });
        ran.ok().flatten()
    }

    /// What a `RUNTIME list` entry (or its absence) says of a container-class sandbox.
    pub(super) fn listed_as(&self, id: &SandboxId, status: Option<&String>) -> Observed {
        match status {
            _ if !self.dir(id).exists() => Observed::Missing,
            Some(status) => observed_as(status),
            None => self.at_rest(id),
        }
    }

    pub(super) fn runsc(&self) -> Result<&gvisor::Runsc, DriverError> {
        self.gvisor
            .as_ref()
            .map_err(|e| gvisor::unsupported("running a sandbox", e))
    }

    /// A `RUNTIME run` that failed, with the last lines of the runtime's log.
    pub(super) fn run_failed(&self, id: &SandboxId) -> DriverError {
        let log = std::fs::read_to_string(self.dir(id).join("runtime.log")).unwrap_or_default();
        let tail: String = log.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        self.runtime_err("run", id, tail)
    }

    pub(super) fn runtime_err(
        &self,
        action: &'static str,
        id: &SandboxId,
        detail: String,
    ) -> DriverError {
        let runtime = match gvisor::class_of(&self.dir(id)) {
            Isolation::Gvisor => "runsc".to_string(),
            Isolation::Container => self.runtime_name(),
        };
        DriverError::Runtime {
            runtime,
            action,
            id: id.clone(),
            detail,
        }
    }

    /// Remove the sandbox's cgroups the runtime left: an empty directory per controller,
    /// which `crun delete` now and then fails to remove when the sandbox's last processes are
    /// still being torn down. Only empty ones can go (rmdir); a busy one is retried briefly.
    /// Whether the sandbox's processes are frozen (cgroup freezer, v1 or v2): a signal waits
    /// for their thaw.
    pub(super) fn frozen(&self, id: &SandboxId) -> bool {
        let root = std::path::Path::new("/sys/fs/cgroup");
        let v1 = root.join("freezer/islo").join(&id.0).join("freezer.state");
        let v2 = root.join("islo").join(&id.0).join("cgroup.events");
        std::fs::read_to_string(v1).is_ok_and(|s| s.trim() != "THAWED")
            || std::fs::read_to_string(v2).is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
    }

    pub(super) fn remove_cgroups(&self, id: &SandboxId) {
        let root = std::path::Path::new("/sys/fs/cgroup");
        let mut dirs = vec![root.join("islo").join(&id.0)];
        if let Ok(controllers) = std::fs::read_dir(root) {
            dirs.extend(
                controllers
                    .flatten()
                    .map(|c| c.path().join("islo").join(&id.0)),
            );
        }
        for d in dirs.iter().filter(|d| d.is_dir()) {
            for _ in 0..20 {
                match std::fs::remove_dir(d) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => break,
                }
            }
        }
    }
}

/// What a runtime's status word means.
pub(super) fn observed_as(status: &str) -> Observed {
    match status {
        "running" => Observed::Running,
        "paused" => Observed::Frozen,
        _ => Observed::Stopped,
    }
}

/// `RUNTIME list --format json` (crun and runc alike): id → status. runc prints `null` for
/// no containers.
pub(super) fn parse_list(text: &str) -> Result<std::collections::HashMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        id: String,
        status: String,
    }
    let entries: Option<Vec<Entry>> =
        serde_json::from_str(text).map_err(|e| format!("no list of containers: {e}"))?;
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.id, e.status))
        .collect())
}

/// Open a directory to reach it from any mount namespace (as `/proc/self/fd/N`).
pub(super) fn open_dir(path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
}

/// The program to run for `runtime`: its sealed copy where the host makes one (and that
/// copy, to keep open), else the file.
pub(super) fn sealed_runtime(
    host: &dyn Host,
    runtime: &Path,
) -> (PathBuf, Option<std::os::fd::OwnedFd>) {
    match host.sealed_copy(runtime) {
        Ok(Some(fd)) => {
            let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            (path.into(), Some(fd))
        }
        Ok(None) => (runtime.to_path_buf(), None),
        Err(e) => {
            tracing::warn!(runtime = %runtime.display(), error = %e,
                "no sealed copy of the runtime; it copies itself at every start");
            (runtime.to_path_buf(), None)
        }
    }
}
