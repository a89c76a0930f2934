//! The OCI back end: crun (or runc), overlayfs over cached image layers, a per-sandbox
//! writable layer on its own size-bounded ext4 loop disk, and `islo-agent` as PID 1.
//!
//! Layout per sandbox under `<state>/sandboxes/<id>/`: `disk.img` (sparse ext4, copied from
//! a template per size), `disk/` (its mount: `upper/`, `work/`, and `run/`, the agent's socket
//! and log, mounted at `/.islo/run`: on the sandbox's own disk, so it counts against its quota),
//! `rootfs/` (the overlay), `config.json`, `agent.log` (the agent's output until it moves its
//! log into `run/`), `runtime.log`.

mod elf;
mod seccomp;
mod spec;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::agent;
use crate::host::{Host, Mount};
use crate::{Driver, DriverError, Observed, SandboxId, SandboxSpec};

pub use seccomp::DENIED as SECCOMP_DENIED;

/// How long a started sandbox's agent may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of the OCI back end.
#[derive(Debug, Clone)]
pub struct OciConfig {
    /// Root of sandbox storage (`sandboxes/`, `disk-templates/`).
    pub state_dir: PathBuf,
    /// The runtime's own state (`--root`).
    pub runtime_root: PathBuf,
    /// The statically linked `islo-agent`.
    pub agent_binary: PathBuf,
    /// Force a runtime binary (`crun`, `runc`, or a path); default: crun, else runc.
    pub runtime: Option<PathBuf>,
}

/// The OCI back end.
pub struct OciDriver {
    cfg: OciConfig,
    runtime: PathBuf,
    host: Arc<dyn Host>,
    nofile_hard: u64,
}

impl OciDriver {
    /// Pick a runtime and prepare the host for it.
    pub fn new(cfg: OciConfig, host: Arc<dyn Host>) -> Result<Self, DriverError> {
        if !cfg.agent_binary.is_file() {
            return Err(DriverError::Host(format!(
                "agent binary {} not found (build it with scripts/build-agent.sh or set agent_path)",
                cfg.agent_binary.display()
            )));
        }
        match elf::is_static(&cfg.agent_binary) {
            Ok(true) => {}
            Ok(false) => {
                return Err(DriverError::Host(format!(
                    "agent binary {} is dynamically linked; it must be static to run in any image \
                     (build it with scripts/build-agent.sh)",
                    cfg.agent_binary.display()
                )));
            }
            Err(e) => {
                return Err(DriverError::Host(format!(
                    "agent binary {}: {e}",
                    cfg.agent_binary.display()
                )));
            }
        }
        let runtime = match &cfg.runtime {
            Some(r) => find_program(r)
                .ok_or_else(|| DriverError::Host(format!("runtime {} not found", r.display())))?,
            None => choose_runtime(host.as_ref())?,
        };
        for d in [
            cfg.state_dir.join("sandboxes"),
            cfg.state_dir.join("disk-templates"),
            cfg.runtime_root.clone(),
        ] {
            std::fs::create_dir_all(&d).map_err(DriverError::io(d.display().to_string()))?;
        }
        let nofile_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(65536)
            .min(65536);
        Ok(Self {
            cfg,
            runtime,
            host,
            nofile_hard,
        })
    }

    fn dir(&self, id: &SandboxId) -> PathBuf {
        self.cfg.state_dir.join("sandboxes").join(&id.0)
    }

    fn runtime_name(&self) -> String {
        self.runtime
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn runtime_cmd(&self, dir: &Path, args: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["--root".into(), self.cfg.runtime_root.clone().into()];
        v.push("--log".into());
        v.push(dir.join("runtime.log").into());
        v.extend(args.iter().map(OsString::from));
        v
    }

    fn runtime_err(&self, action: &'static str, id: &SandboxId, detail: String) -> DriverError {
        DriverError::Runtime {
            runtime: self.runtime_name(),
            action,
            id: id.clone(),
            detail,
        }
    }

    /// Mount the disk and the overlay (each only if not mounted yet).
    fn mount_storage(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let dir = self.dir(&spec.id);
        let (disk, rootfs) = (dir.join("disk"), dir.join("rootfs"));
        if !self.host.is_mounted(&disk) {
            self.host
                .mount(&Mount::Loop {
                    image: dir.join("disk.img"),
                    target: disk.clone(),
                })
                .map_err(DriverError::io(format!("mounting disk of {}", spec.id)))?;
        }
        for sub in ["upper", "work", "run"] {
            let p = disk.join(sub);
            std::fs::create_dir_all(&p).map_err(DriverError::io(p.display().to_string()))?;
        }
        let run = disk.join("run");
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(DriverError::io(run.display().to_string()))?;
        if !self.host.is_mounted(&rootfs) {
            self.host
                .mount(&Mount::Overlay {
                    lower: spec.layers.clone(),
                    upper: disk.join("upper"),
                    work: disk.join("work"),
                    target: rootfs,
                })
                .map_err(DriverError::io(format!("mounting rootfs of {}", spec.id)))?;
        }
        Ok(())
    }

    fn unmount_storage(&self, id: &SandboxId) -> Result<(), DriverError> {
        let dir = self.dir(id);
        for target in [dir.join("rootfs"), dir.join("disk")] {
            self.host
                .unmount(&target)
                .map_err(DriverError::io(format!("unmounting {}", target.display())))?;
        }
        Ok(())
    }

    /// A fresh sparse ext4 image of `bytes`, copied from a per-size template.
    fn make_disk(&self, bytes: u64, dest: &Path) -> Result<(), DriverError> {
        let tmpl = self
            .cfg
            .state_dir
            .join("disk-templates")
            .join(format!("{bytes}.img"));
        if !tmpl.exists() {
            let tmp = tmpl.with_extension(format!("tmp{}", std::process::id()));
            let f =
                std::fs::File::create(&tmp).map_err(DriverError::io(tmp.display().to_string()))?;
            f.set_len(bytes)
                .map_err(DriverError::io(tmp.display().to_string()))?;
            let args: Vec<OsString> = [
                "-q",
                "-F",
                "-m",
                "0",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
            ]
            .iter()
            .map(OsString::from)
            .chain([tmp.clone().into_os_string()])
            .collect();
            let out = self
                .host
                .run(Path::new("mkfs.ext4"), &args)
                .map_err(DriverError::io("mkfs.ext4"))?;
            if !out.success {
                let _ = std::fs::remove_file(&tmp);
                return Err(DriverError::Host(format!(
                    "mkfs.ext4: {}",
                    out.stderr.trim()
                )));
            }
            std::fs::rename(&tmp, &tmpl).map_err(DriverError::io(tmpl.display().to_string()))?;
        }
        let out = self
            .host
            .run(
                Path::new("cp"),
                &["--sparse=always".into(), tmpl.into(), dest.into()],
            )
            .map_err(DriverError::io("cp"))?;
        if out.success {
            Ok(())
        } else {
            Err(DriverError::Host(format!(
                "copying disk template: {}",
                out.stderr.trim()
            )))
        }
    }

    fn build(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let dir = self.dir(&spec.id);
        for sub in ["disk", "rootfs"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(DriverError::io(p.display().to_string()))?;
        }
        self.make_disk(spec.limits.disk_bytes, &dir.join("disk.img"))?;
        self.launch(spec)
    }

    fn launch(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let dir = self.dir(&spec.id);
        self.mount_storage(spec)?;
        let (agent_binary, run_dir) = (
            self.cfg.agent_binary.to_string_lossy(),
            dir.join("disk/run"),
        );
        let run_dir = run_dir.to_string_lossy();
        let params = spec::SpecParams {
            agent_binary: &agent_binary,
            run_dir: &run_dir,
            nofile_hard: self.nofile_hard,
        };
        let config = spec::config(spec, &params);
        let path = dir.join("config.json");
        std::fs::write(&path, config.to_string())
            .map_err(DriverError::io(path.display().to_string()))?;
        // A record left by a sandbox that died on its own blocks a new run.
        let _ = self.host.run(
            &self.runtime,
            &self.runtime_cmd(&dir, &["delete", "-f", &spec.id.0]),
        );
        let bundle = dir.to_string_lossy().into_owned();
        let args = self.runtime_cmd(&dir, &["run", "-d", "--bundle", &bundle, &spec.id.0]);
        let ok = self
            .host
            .run_detached(&self.runtime, &args, &dir.join("agent.log"))
            .map_err(DriverError::io(self.runtime.display().to_string()))?;
        if !ok {
            let log = std::fs::read_to_string(dir.join("runtime.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            return Err(self.runtime_err("run", &spec.id, tail));
        }
        self.wait_ready(&spec.id).map_err(|e| {
            let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
            DriverError::Agent {
                id: spec.id.clone(),
                detail: format!("{e}; agent log: {}", log.trim()),
            }
        })
    }

    /// Wait for the agent to answer; give up early if the sandbox's PID 1 has exited.
    fn wait_ready(&self, id: &SandboxId) -> Result<(), String> {
        let sock = self.agent_socket(id);
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            match agent::wait_ready(&sock, Duration::from_millis(100)) {
                Ok(()) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e.to_string()),
                Err(e) => {
                    if self.observe(id).map_err(|e| e.to_string())? != Observed::Running {
                        return Err(format!("the sandbox exited while starting ({e})"));
                    }
                }
            }
        }
    }

    fn kill(&self, id: &SandboxId) -> Result<(), DriverError> {
        let dir = self.dir(id);
        let out = self
            .host
            .run(
                &self.runtime,
                &self.runtime_cmd(&dir, &["delete", "-f", &id.0]),
            )
            .map_err(DriverError::io(self.runtime.display().to_string()))?;
        if !out.success
            && !out.stderr.contains("does not exist")
            && !out.stderr.contains("not exist")
        {
            return Err(self.runtime_err("delete", id, out.stderr.trim().to_string()));
        }
        Ok(())
    }
}

impl Driver for OciDriver {
    fn name(&self) -> String {
        self.runtime_name()
    }

    fn create(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let dir = self.dir(&spec.id);
        if dir.exists() {
            return Err(DriverError::AlreadyExists(spec.id.clone()));
        }
        std::fs::create_dir_all(&dir).map_err(DriverError::io(dir.display().to_string()))?;
        self.build(spec).inspect_err(|_| {
            let _ = self.destroy(&spec.id);
        })
    }

    fn start(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        if !self.dir(&spec.id).exists() {
            return Err(DriverError::NotFound(spec.id.clone()));
        }
        if self.observe(&spec.id)? == Observed::Running {
            return Ok(());
        }
        self.launch(spec).inspect_err(|_| {
            let _ = self.stop(&spec.id);
        })
    }

    fn stop(&self, id: &SandboxId) -> Result<(), DriverError> {
        if !self.dir(id).exists() {
            return Err(DriverError::NotFound(id.clone()));
        }
        self.kill(id)?;
        self.unmount_storage(id)
    }

    fn destroy(&self, id: &SandboxId) -> Result<(), DriverError> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(());
        }
        self.kill(id)?;
        self.unmount_storage(id)?;
        std::fs::remove_dir_all(&dir).map_err(DriverError::io(dir.display().to_string()))
    }

    fn observe(&self, id: &SandboxId) -> Result<Observed, DriverError> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(Observed::Missing);
        }
        let out = self
            .host
            .run(&self.runtime, &self.runtime_cmd(&dir, &["state", &id.0]))
            .map_err(DriverError::io(self.runtime.display().to_string()))?;
        let running = out.success
            && serde_json::from_str::<serde_json::Value>(&out.stdout)
                .map(|v| v["status"] == "running")
                .unwrap_or(false);
        Ok(if running {
            Observed::Running
        } else {
            Observed::Stopped
        })
    }

    fn agent_socket(&self, id: &SandboxId) -> PathBuf {
        self.dir(id).join("disk/run").join(islo_agent::SOCKET_NAME)
    }
}

fn find_program(p: &Path) -> Option<PathBuf> {
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
}

/// crun when it can run here, else runc.
fn choose_runtime(host: &dyn Host) -> Result<PathBuf, DriverError> {
    if let Some(crun) = find_program(Path::new("crun")) {
        match fix_hybrid_cgroups(host) {
            Ok(()) => return Ok(crun),
            Err(e) => {
                tracing::warn!(error = %e, "crun cannot run on this host's cgroups; trying runc")
            }
        }
    }
    find_program(Path::new("runc"))
        .ok_or_else(|| DriverError::Host("no OCI runtime found: install crun or runc".into()))
}

/// crun refuses cgroup v1 hybrid hosts whose cgroup2 mount still owns a controller
/// (`hugetlb` here). Moving that controller to its own v1 hierarchy fixes it.
fn fix_hybrid_cgroups(host: &dyn Host) -> Result<(), String> {
    let unified = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() || !unified.exists() {
        return Ok(()); // pure v2 or pure v1
    }
    let controllers = std::fs::read_to_string(unified).map_err(|e| e.to_string())?;
    for ctrl in controllers.split_whitespace() {
        let target = PathBuf::from("/sys/fs/cgroup").join(ctrl);
        std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        let out = host
            .run(
                Path::new("mount"),
                &[
                    "-t".into(),
                    "cgroup".into(),
                    "-o".into(),
                    ctrl.into(),
                    "cgroup".into(),
                    target.clone().into(),
                ],
            )
            .map_err(|e| e.to_string())?;
        if !out.success {
            return Err(format!(
                "moving cgroup controller {ctrl} to v1: {}",
                out.stderr.trim()
            ));
        }
        tracing::info!(
            controller = ctrl,
            "moved cgroup controller off cgroup2 for crun"
        );
    }
    Ok(())
}
