//! The OCI back end: crun (or runc), overlayfs over cached image layers, a per-sandbox
//! writable layer on its own size-bounded ext4 loop disk, and `islo-agent` as PID 1.
//!
//! Layout per sandbox under `<state>/sandboxes/<id>/`: `disk.img` (sparse ext4, copied from
//! a template per size), `disk/` (its mount: `upper/`, `work/`, and `run/`, the agent's socket
//! and log, mounted at `/.islo/run`: on the sandbox's own disk, so it counts against its quota),
//! `rootfs/` (the overlay), `config.json`, `agent.log` (the agent's output until it moves its
//! log into `run/`), `runtime.log`, and while it runs `mntns`, the pin of the sandbox's own
//! mount namespace: the disk, the overlay and the namespace pins are mounted there, not on the
//! host (see [`crate::mntns`]), and the runtime starts the sandbox from inside it.

mod ahead;
mod checkpoint;
mod criu_image;
mod disk;
mod elf;
mod ended;
mod gvisor;
mod hostprep;
pub mod net;
mod runtime;
mod seccomp;
mod spec;
mod trash;
mod usage;
mod userns;

#[cfg(test)]
mod recording;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::agent;
use crate::host::{Host, Mount};
use crate::layer_tar::{self, LayerStats};
use crate::{
    ClassSupport, Driver, DriverError, IdMap, Isolation, Observed, SandboxId, SandboxSpec,
};
use runtime::{observed_as, open_dir, parse_list, sealed_runtime};

pub use seccomp::DENIED as SECCOMP_DENIED;

/// How long a started sandbox's agent may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a removal waits for a killed sandbox's processes to end before the runtime's own
/// `delete --force` takes over.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// The sandbox's [`crate::NetworkSpec`], kept beside it so a stop can take the network down.
pub(crate) const NETWORK_FILE: &str = "network.json";

/// The pin of a sandbox's mount namespace, in its directory.
const MOUNT_NS: &str = "mntns";

/// The descriptor the agent's listening socket has in PID 1 (`--preserve-fds 1`).
pub const AGENT_LISTEN_FD: u32 = 3;

/// Settings of the OCI back end.
#[derive(Debug, Clone)]
pub struct OciConfig {
    /// Root of sandbox storage (`sandboxes/`, `disk-templates/`, `disk-pool/`, `trash/`).
    pub state_dir: PathBuf,
    /// The runtime's own state (`--root`).
    pub runtime_root: PathBuf,
    /// The statically linked `islo-agent`.
    pub agent_binary: PathBuf,
    /// Force a runtime binary (`crun`, `runc`, or a path); default: crun, else runc.
    pub runtime: Option<PathBuf>,
    /// Mount cgroup2 with `favordynmods` (see `hostprep::favor_dynmods`).
    pub favor_dynmods: bool,
    /// Raise `fs.file-max` and `kernel.pid_max` (see `hostprep::fit_host_limits`).
    pub fit_host_limits: bool,
    /// runsc for the `gvisor` class (default: `runsc` on `PATH`; without it the class is not
    /// offered).
    pub runsc: Option<PathBuf>,
    /// The gVisor platform (default `ptrace`).
    pub gvisor_platform: Option<String>,
}

/// The OCI back end.
pub struct OciDriver {
    cfg: OciConfig,
    runtime: PathBuf,
    /// What runs for `runtime`: its sealed copy (`/proc/self/fd/N`, see
    /// [`Host::sealed_copy`]), else the file itself.
    program: PathBuf,
    _sealed: Option<std::os::fd::OwnedFd>,
    host: Arc<dyn Host>,
    nofile_hard: u64,
    disks: disk::Disks,
    trash: trash::Trash,
    /// Whether sandboxes can run in user namespaces here (probed once).
    userns: Result<(), String>,
    /// runsc for the `gvisor` class, or why there is none.
    gvisor: Result<gvisor::Runsc, String>,
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
            Some(r) => hostprep::find_program(r)
                .ok_or_else(|| DriverError::Host(format!("runtime {} not found", r.display())))?,
            None => hostprep::choose_runtime(host.as_ref())?,
        };
        for d in [cfg.state_dir.join("sandboxes"), cfg.runtime_root.clone()] {
            std::fs::create_dir_all(&d).map_err(DriverError::io(d.display().to_string()))?;
        }
        let nofile_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .maximum
            .unwrap_or(65536)
            .min(65536);
        if cfg.favor_dynmods {
            hostprep::favor_dynmods(host.as_ref());
        }
        if cfg.fit_host_limits {
            hostprep::fit_host_limits();
        }
        // The base leaves out the sandboxes' pins, and what they mounted on the host under
        // an older islod.
        let leave_out = [cfg.state_dir.join("sandboxes"), PathBuf::from("/run/netns")];
        host.base_mount_ns(&leave_out).map_err(DriverError::io(
            "making the base mount namespace of sandboxes",
        ))?;
        let disks = disk::Disks::new(&cfg.state_dir, host.clone())?;
        let trash = trash::Trash::new(&cfg.state_dir, disks.activity())?;
        let (program, sealed) = sealed_runtime(host.as_ref(), &runtime);
        let userns = host.idmap_support(&cfg.state_dir);
        if let Err(e) = &userns {
            tracing::warn!("sandboxes cannot run in user namespaces here: {e}");
        }
        let runsc_root = cfg.state_dir.join("runtime-gvisor");
        let gvisor = gvisor::Runsc::find(
            host.as_ref(),
            cfg.runsc.as_deref(),
            cfg.gvisor_platform.as_deref(),
            runsc_root,
        );
        if let Err(e) = &gvisor {
            tracing::info!("the gvisor isolation class is not offered: {e}");
        }
        Ok(Self {
            cfg,
            runtime,
            program,
            _sealed: sealed,
            host,
            nofile_hard,
            disks,
            trash,
            userns,
            gvisor,
        })
    }

    fn dir(&self, id: &SandboxId) -> PathBuf {
        self.cfg.state_dir.join("sandboxes").join(&id.0)
    }

    /// Run `f` in the sandbox's mount namespace (see [`Host::in_mount_ns`]).
    fn in_ns<T: Send>(
        &self,
        id: &SandboxId,
        create: bool,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, DriverError> {
        let (mut f, mut out) = (Some(f), None);
        let pin = self.dir(id).join(MOUNT_NS);
        self.host
            .in_mount_ns(&pin, create, &mut || out = f.take().map(|f| f()))
            .map_err(DriverError::io(format!("the mount namespace of {id}")))?;
        out.ok_or_else(|| DriverError::Host(format!("the mount namespace of {id} ran nothing")))
    }

    /// Unpin the sandbox's mount namespace (it holds nothing once its storage is unmounted):
    /// a stopped sandbox holds no mount on the host.
    fn drop_ns(&self, id: &SandboxId) -> Result<(), DriverError> {
        let pin = self.dir(id).join(MOUNT_NS);
        self.host
            .drop_mount_ns(&pin)
            .map_err(DriverError::io(pin.display().to_string()))
    }

    /// A sandbox with storage and no process: paused (a checkpoint waits) or stopped.
    fn at_rest(&self, id: &SandboxId) -> Observed {
        match self.dir(id).join(checkpoint::PAUSED).exists() {
            true => Observed::Paused,
            false => Observed::Stopped,
        }
    }

    fn runtime_name(&self) -> String {
        self.runtime
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Mount the disk, own its files for the sandbox's ids, make its namespaces (with a user
    /// namespace) and mount the overlay (each mount only if not mounted yet).
    fn mount_storage(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let dir = self.dir(&spec.id);
        let (disk, rootfs) = (dir.join("disk"), dir.join("rootfs"));
        if !self.host.is_mounted(&disk) {
            self.disks
                .mount(&dir.join("disk.img"), &disk)
                .map_err(DriverError::io(format!("mounting disk of {}", spec.id)))?;
        }
        for sub in ["upper", "work", "run"] {
            let p = disk.join(sub);
            if !p.exists() {
                std::fs::create_dir_all(&p).map_err(DriverError::io(p.display().to_string()))?;
                if sub != "work" {
                    userns::own_new_dir(self.host.as_ref(), &p, spec.ids)?;
                }
            }
        }
        let images = disk.join("checkpoint");
        if images.exists() && !dir.join(checkpoint::PAUSED).exists() {
            // Left by a pause a stop or a plain start has ended since.
            let _ = std::fs::remove_dir_all(&images);
        }
        let run = disk.join("run");
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(DriverError::io(run.display().to_string()))?;
        userns::own_disk(&dir, &disk, spec)?;
        if let Some(ids) = spec.ids {
            self.userns.clone().map_err(DriverError::Host)?;
            userns::make_namespaces(self.host.as_ref(), &dir, spec, ids)?;
        }
        if !self.host.is_mounted(&rootfs) {
            self.host
                .mount(&Mount::Overlay {
                    lower: spec.layers.clone(),
                    upper: disk.join("upper"),
                    work: disk.join("work"),
                    target: rootfs,
                    idmap: spec.ids.map(|_| userns::userns_path(&dir)),
                })
                .map_err(DriverError::io(format!("mounting rootfs of {}", spec.id)))?;
        }
        Ok(())
    }

    fn unmount_storage(&self, id: &SandboxId) -> Result<(), DriverError> {
        let dir = self.dir(id);
        for target in [
            dir.join("rootfs"),
            userns::userns_path(&dir),
            dir.join("disk"),
        ] {
            self.host
                .unmount(&target)
                .map_err(DriverError::io(format!("unmounting {}", target.display())))?;
        }
        Ok(())
    }

    fn build(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let _busy = self.disks.busy();
        gvisor::record_class(&self.dir(&spec.id), spec.isolation)?;
        self.make_disk(spec)?;
        self.launch(spec, false)
    }

    /// A new sandbox's directories and disk.
    fn make_disk(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let dir = self.dir(&spec.id);
        for sub in ["disk", "rootfs"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(DriverError::io(p.display().to_string()))?;
        }
        let t = std::time::Instant::now();
        self.disks
            .make(spec.limits.disk_bytes, &dir.join("disk.img"))?;
        userns::record_owner(&dir, spec.ids)?;
        tracing::debug!(sandbox = %spec.id, disk_ms = t.elapsed().as_secs_f64() * 1e3, "disk ready");
        Ok(())
    }

    /// The runtime configuration of `spec` (`config.json`).
    fn runtime_config(&self, spec: &SandboxSpec) -> serde_json::Value {
        let dir = self.dir(&spec.id);
        let agent_binary = self.cfg.agent_binary.to_string_lossy();
        let run_dir = dir.join("disk/run");
        let run_dir = run_dir.to_string_lossy();
        let userns = spec
            .ids
            .map(|_| userns::userns_path(&dir).to_string_lossy().into_owned());
        let params = spec::SpecParams {
            agent_binary: &agent_binary,
            run_dir: &run_dir,
            nofile_hard: self.nofile_hard,
            userns: userns.as_deref(),
        };
        let mut config = spec::config(spec, &params);
        if spec.isolation == Isolation::Gvisor {
            gvisor::adapt_config(&mut config, &dir);
        }
        config
    }

    /// Mount and run, in the sandbox's mount namespace; then wait for its agent. `restart`:
    /// clear the record a sandbox that died on its own left behind.
    fn launch(&self, spec: &SandboxSpec, restart: bool) -> Result<(), DriverError> {
        let dir = self.dir(&spec.id);
        let t = std::time::Instant::now();
        let mounted = self.in_ns(&spec.id, true, || self.mount_and_run(spec, restart))??;
        let ran = t.elapsed();
        self.wait_ready(&spec.id).map_err(|e| {
            let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
            DriverError::Agent {
                id: spec.id.clone(),
                detail: format!("{e}; agent log: {}", log.trim()),
            }
        })?;
        if spec.isolation == Isolation::Gvisor {
            self.seal(&dir)?;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(sandbox = %spec.id, mount_ms = ms(mounted), run_ms = ms(ran - mounted),
            ready_ms = ms(t.elapsed() - ran), "sandbox launched");
        Ok(())
    }

    /// Mount the storage, attach the network and run the runtime; how long mounting took.
    fn mount_and_run(&self, spec: &SandboxSpec, restart: bool) -> Result<Duration, DriverError> {
        let dir = self.dir(&spec.id);
        let t = std::time::Instant::now();
        self.mount_storage(spec)?;
        let mounted = t.elapsed();
        if let Some(n) = &spec.network {
            let t = std::time::Instant::now();
            self.record_network(&spec.id, n)?;
            net::attach(self.host.as_ref(), &dir, &spec.id, n, spec.ids.is_some())?;
            tracing::debug!(sandbox = %spec.id, net_ms = t.elapsed().as_secs_f64() * 1e3, "network attached");
        }
        let config = self.runtime_config(spec);
        let path = dir.join("config.json");
        crate::host::write_atomic(&path, config.to_string().as_bytes(), 0o600)
            .map_err(DriverError::io(path.display().to_string()))?;
        if restart {
            let _ = self.run_runtime(&spec.id, &["delete", "--force", &spec.id.0]);
        }
        if spec.isolation == Isolation::Gvisor {
            return self.run_gvisor(spec, &dir).map(|()| mounted);
        }
        // The agent's socket is bound here, on the host, and handed to PID 1: nothing in the
        // sandbox can reach its path, replace it or listen in its place.
        let sock = dir.join(islo_agent::SOCKET_NAME);
        let _ = std::fs::remove_file(&sock);
        let listener = std::os::unix::net::UnixListener::bind(&sock)
            .map_err(DriverError::io(sock.display().to_string()))?;
        std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(DriverError::io(sock.display().to_string()))?;
        let bundle = dir.to_string_lossy().into_owned();
        let args = self.runtime_cmd(
            &dir,
            &[
                "run",
                "--preserve-fds",
                "1",
                "-d",
                "--bundle",
                &bundle,
                &spec.id.0,
            ],
        );
        let ok = self
            .host
            .run_detached(
                &self.program,
                &args,
                &dir.join("agent.log"),
                Some(std::os::fd::AsFd::as_fd(&listener)),
            )
            .map_err(DriverError::io(self.runtime.display().to_string()))?;
        drop(listener);
        if !ok {
            return Err(self.run_failed(&spec.id));
        }
        Ok(mounted)
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

    /// Run `RUNTIME ACTION ID`, failing with its error output.
    fn runtime_ok(&self, action: &'static str, id: &SandboxId) -> Result<(), DriverError> {
        let out = self.run_runtime(id, &[action, &id.0])?;
        if !out.success {
            return Err(self.runtime_err(action, id, out.stderr.trim().to_string()));
        }
        Ok(())
    }

    /// Record the sandbox's link, which [`Self::detach_network`] takes down.
    fn record_network(&self, id: &SandboxId, n: &crate::NetworkSpec) -> Result<(), DriverError> {
        let path = self.dir(id).join(NETWORK_FILE);
        let text = serde_json::to_string(n).map_err(|e| DriverError::Host(e.to_string()))?;
        crate::host::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(DriverError::io(path.display().to_string()))
    }

    /// Take down the sandbox's network, if it has one.
    fn detach_network(&self, id: &SandboxId) {
        let dir = self.dir(id);
        let spec = std::fs::read_to_string(dir.join(NETWORK_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<crate::NetworkSpec>(&t).ok());
        if let Some(n) = spec {
            net::detach_later(self.host.clone(), &dir, id, &n);
        }
    }

    /// End every process and take the storage, link and namespaces down; the files stay.
    /// `discarding`: the sandbox is being destroyed, so its disk's unwritten data and journal
    /// are dropped instead of written out ([`crate::Host::discard_fs`]).
    fn take_down(&self, id: &SandboxId, discarding: bool) -> Result<(), DriverError> {
        let _busy = self.disks.busy();
        let t = std::time::Instant::now();
        self.kill(id)?;
        let killed = t.elapsed();
        self.remove_cgroups(id);
        let uncgrouped = t.elapsed();
        self.in_ns(id, false, || {
            self.detach_network(id);
            if discarding {
                let disk = self.dir(id).join("disk");
                if let Err(e) = self.host.discard_fs(&disk) {
                    tracing::debug!(sandbox = %id, error = %e, "disk unmounted with a write-out");
                }
            }
            self.unmount_storage(id)
        })??;
        self.drop_ns(id)?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(sandbox = %id, kill_ms = ms(killed), cgroups_ms = ms(uncgrouped - killed),
            storage_ms = ms(t.elapsed() - uncgrouped), "sandbox taken down");
        Ok(())
    }

    /// Drop a paused sandbox's checkpoint (a stop or a plain start), keeping its files.
    fn forget_checkpoint(&self, id: &SandboxId) -> Result<(), DriverError> {
        let marker = self.dir(id).join(checkpoint::PAUSED);
        if !marker.exists() {
            return Ok(());
        }
        // The images are on the sandbox's disk, whose space they hold: cleared at its next
        // mount (`mount_storage`).
        std::fs::remove_file(&marker).map_err(DriverError::io(marker.display().to_string()))
    }

    fn kill(&self, id: &SandboxId) -> Result<(), DriverError> {
        if gvisor::class_of(&self.dir(id)) == Isolation::Container && !self.frozen(id) {
            ended::end_now(&self.cfg.runtime_root.join(&id.0), KILL_WAIT);
        }
        let out = self.run_runtime(id, &["delete", "--force", &id.0])?;
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
        if spec.isolation == Isolation::Gvisor {
            self.runsc()?;
            if spec.ids.is_some() {
                return Err(DriverError::Host(
                    "a gvisor sandbox runs in runsc's user namespace, not a host id range".into(),
                ));
            }
        }
        std::fs::create_dir_all(&dir).map_err(DriverError::io(dir.display().to_string()))?;
        let _lowered = ahead::Lowered::for_spec(&self.host, spec);
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
        self.forget_checkpoint(&spec.id)?;
        let _busy = self.disks.busy();
        self.launch(spec, true).inspect_err(|_| {
            let _ = self.stop(&spec.id);
        })
    }

    fn stop(&self, id: &SandboxId) -> Result<(), DriverError> {
        if !self.dir(id).exists() {
            return Err(DriverError::NotFound(id.clone()));
        }
        self.take_down(id, false)?;
        // A stop ends a pause: the memory it kept is dropped, the files stay.
        self.forget_checkpoint(id)
    }

    fn pause(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        spec.checkpointable("pausing")?;
        match self.observe(&spec.id)? {
            Observed::Running => self.checkpoint(spec),
            Observed::Missing => Err(DriverError::NotFound(spec.id.clone())),
            other => Err(DriverError::Host(format!(
                "sandbox {} is not running ({other:?})",
                spec.id
            ))),
        }
    }

    fn checkpoint_to(&self, spec: &SandboxSpec, out: &Path) -> Result<(), DriverError> {
        spec.checkpointable("a memory snapshot")?;
        match self.observe(&spec.id)? {
            Observed::Running => self.checkpoint_copy(spec, out),
            Observed::Missing => Err(DriverError::NotFound(spec.id.clone())),
            other => Err(DriverError::Host(format!(
                "sandbox {} is not running ({other:?}): only a running sandbox's memory is saved",
                spec.id
            ))),
        }
    }

    fn create_from(&self, spec: &SandboxSpec, checkpoint: &Path) -> Result<(), DriverError> {
        spec.checkpointable("a memory snapshot")?;
        let dir = self.dir(&spec.id);
        if dir.exists() {
            return Err(DriverError::AlreadyExists(spec.id.clone()));
        }
        std::fs::create_dir_all(&dir).map_err(DriverError::io(dir.display().to_string()))?;
        self.fork(spec, checkpoint).inspect_err(|_| {
            let _ = self.destroy(&spec.id);
        })
    }

    fn resume(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        match self.observe(&spec.id)? {
            Observed::Paused => self.restore(spec),
            Observed::Missing => Err(DriverError::NotFound(spec.id.clone())),
            other => Err(DriverError::Host(format!(
                "sandbox {} is not paused ({other:?})",
                spec.id
            ))),
        }
    }

    fn destroy(&self, id: &SandboxId) -> Result<(), DriverError> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(());
        }
        // A disk mounted ahead for a create that failed before attaching it goes first.
        self.disks.forget(&dir.join("disk.img"));
        self.take_down(id, true)?;
        self.unseal(&dir)?;
        self.trash.discard(&dir, &id.0)
    }

    fn observe(&self, id: &SandboxId) -> Result<Observed, DriverError> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(Observed::Missing);
        }
        let out = self.run_runtime(id, &["state", &id.0])?;
        let status = serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .filter(|_| out.success)
            .and_then(|v| v["status"].as_str().map(str::to_string));
        Ok(status
            .as_deref()
            .map_or_else(|| self.at_rest(id), observed_as))
    }

    /// One `RUNTIME list` instead of a `RUNTIME state` per sandbox (about 10 ms each). When
    /// the list cannot be had (one container's broken record can fail it), each is asked on
    /// its own, as before: a start-up is slower, never refused.
    fn observe_all(&self, ids: &[SandboxId]) -> Result<Vec<Observed>, DriverError> {
        let listed = self
            .host
            .run(
                &self.program,
                &self.runtime_cmd(&self.cfg.state_dir, &["list", "--format", "json"]),
            )
            .map_err(|e| e.to_string())
            .and_then(|out| match out.success {
                true => parse_list(&out.stdout),
                false => Err(out.stderr.trim().to_string()),
            });
        let listed = match listed {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(runtime = %self.runtime_name(), error = %e,
                    "listing containers failed; asking for each sandbox on its own");
                return ids.iter().map(|id| self.observe(id)).collect();
            }
        };
        // runsc answers for a sandbox only from its network namespace: each is asked there.
        ids.iter()
            .map(|id| match listed.get(&id.0) {
                _ if gvisor::class_of(&self.dir(id)) == Isolation::Gvisor => self.observe(id),
                other => Ok(self.listed_as(id, other)),
            })
            .collect()
    }

    fn thaw(&self, id: &SandboxId) -> Result<(), DriverError> {
        match self.observe(id)? {
            Observed::Frozen => self.runtime_ok("resume", id),
            Observed::Missing => Err(DriverError::NotFound(id.clone())),
            Observed::Running | Observed::Stopped | Observed::Paused => Ok(()),
        }
    }

    fn hand_over(&self, spec: &SandboxSpec, hostname: &str) -> Result<(), DriverError> {
        self.hand_over_now(spec, hostname)
    }

    /// The host-side socket handed to the agent; a sandbox started before the agent was
    /// handed its socket still listens in its run directory until it is restarted.
    fn agent_socket(&self, id: &SandboxId) -> PathBuf {
        let dir = self.dir(id);
        if gvisor::class_of(&dir) == Isolation::Gvisor {
            return gvisor::agent_socket(&dir);
        }
        let host = dir.join(islo_agent::SOCKET_NAME);
        let legacy = dir.join("disk/run").join(islo_agent::SOCKET_NAME);
        if !host.exists() && legacy.exists() {
            return legacy;
        }
        host
    }

    fn rootfs(&self, id: &SandboxId) -> Option<crate::Rootfs> {
        let root = self.dir(id).join("rootfs");
        let dir = self.in_ns(id, false, || {
            self.host
                .is_mounted(&root)
                .then(|| open_dir(&root))
                .transpose()
        });
        match dir {
            Ok(Ok(dir)) => dir.map(crate::Rootfs::held),
            Ok(Err(e)) => {
                tracing::warn!(sandbox = %id, error = %e, "opening the sandbox's root");
                None
            }
            Err(e) => {
                tracing::warn!(sandbox = %id, error = %e, "reaching the sandbox's root");
                None
            }
        }
    }

    fn user_namespaces(&self) -> Result<(), String> {
        self.userns.clone()
    }

    fn isolation_classes(&self) -> Vec<ClassSupport> {
        vec![
            ClassSupport {
                class: Isolation::Container,
                runtime: Ok(self.runtime_name()),
            },
            ClassSupport {
                class: Isolation::Gvisor,
                runtime: self
                    .gvisor
                    .as_ref()
                    .map(|r| format!("runsc ({})", r.platform))
                    .map_err(Clone::clone),
            },
        ]
    }

    fn end_notice(&self, id: &SandboxId) -> Option<std::os::fd::OwnedFd> {
        // runsc records its sandbox process elsewhere; those are asked (agent ping).
        (gvisor::class_of(&self.dir(id)) == Isolation::Container)
            .then(|| ended::end_notice(&self.cfg.runtime_root.join(&id.0)))
            .flatten()
    }

    fn usage(&self, id: &SandboxId) -> Option<crate::Usage> {
        usage::read(std::path::Path::new("/sys/fs/cgroup"), id)
    }

    fn export_changes(
        &self,
        spec: &SandboxSpec,
        out: &mut dyn std::io::Write,
    ) -> Result<LayerStats, DriverError> {
        let id = &spec.id;
        let dir = self.dir(id);
        if !dir.exists() {
            return Err(DriverError::NotFound(id.clone()));
        }
        let (disk, upper) = (dir.join("disk"), dir.join("disk/upper"));
        // The upper layer is mounted in the sandbox's namespace: it is written through a
        // descriptor opened there.
        let write = |out: &mut dyn std::io::Write| {
            let held = self
                .in_ns(id, false, || open_dir(&upper))?
                .map_err(DriverError::io(upper.display().to_string()))?;
            let upper = crate::Rootfs::held(held);
            layer_tar::write_layer_as(upper.path(), IdMap::of(spec.ids), out)
                .map_err(DriverError::io(format!("writing the changes of {id}")))
        };
        if self.observe(id)? == Observed::Running {
            // Frozen (cgroup freezer) while the layer is cut: one instant's state.
            self.runtime_ok("pause", id)?;
            let t = std::time::Instant::now();
            let written = write(out);
            let resumed = self.runtime_ok("resume", id);
            tracing::debug!(sandbox = %id, frozen_ms = t.elapsed().as_secs_f64() * 1e3, "changes exported");
            return written.and_then(|s| resumed.map(|()| s));
        }
        let mounted_here = self.in_ns(id, true, || {
            if self.host.is_mounted(&disk) {
                return Ok(false);
            }
            let disk_img = Mount::Loop {
                image: dir.join("disk.img"),
                target: disk.clone(),
            };
            self.host.mount(&disk_img).map(|()| true)
        })?;
        let mounted_here = mounted_here.map_err(|e| {
            // The namespace may have been made for this mount alone.
            let _ = self.drop_ns(id);
            DriverError::io(format!("mounting disk of {id}"))(e)
        })?;
        let written = write(out);
        if mounted_here {
            self.in_ns(id, false, || self.host.unmount(&disk))?
                .map_err(DriverError::io(format!("unmounting {}", disk.display())))?;
            self.drop_ns(id)?;
        }
        written
    }
}
