//! Pause and resume: every process of a sandbox checkpointed by CRIU to the sandbox's own disk,
//! and restored from there.
//!
//! - **Pause.** The agent is asked to make itself checkpointable (it closes its connections
//!   and listens inside the sandbox, see `islo_agent::proto::AgentRequest::Quiesce`), CRIU
//!   dumps the process tree into `disk/checkpoint` (on the sandbox's disk, so it counts
//!   against its quota) and kills it, the runtime's record of the container is kept beside the
//!   images, and the sandbox is taken down like a stop: no process, no cgroup, no mount, no
//!   link. A host-side marker (`paused`) tells [`crate::Driver::observe`]. A dump that fails
//!   leaves the processes running, and the agent is handed its host socket back.
//! - **Resume.** The storage is mounted, CRIU restores the tree into new namespaces (its user
//!   namespace with the same id map, an empty network namespace that islod then links to the
//!   host as at a start), the runtime's record is written back with the new PID 1, so `crun`
//!   stops and deletes it as any other, and the agent is handed a socket bound on the host.
//!
//! CRIU restores mounts from inside the sandbox's user namespace, which cannot traverse
//! islod's state directory: the sources it binds (the root, the agent, its run directory)
//! are first bound into a tmpfs at [`STAGE`], in the sandbox's own mount namespace.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::OciDriver;
use crate::host::Mount;
use crate::{DriverError, SandboxId, SandboxSpec};

/// The images, on the sandbox's disk.
const IMAGES: &str = "disk/checkpoint";
/// The host-side marker of a paused sandbox.
pub(super) const PAUSED: &str = "paused";
/// Where a restore finds what it binds (in the sandbox's mount namespace only).
const STAGE: &str = "/run/islo-restore";
/// The agent's socket inside the sandbox while it is paused.
fn inside_socket() -> String {
    format!(
        "{}/{}",
        islo_agent::RUN_DIR_IN_SANDBOX,
        islo_agent::SOCKET_NAME
    )
}

/// Mounts that come from the host, by their place in the sandbox, and the name CRIU knows
/// them by between a dump and a restore (with where the restore finds them).
const EXTERNAL: &[(&str, &str, &str)] = &[
    (islo_agent::AGENT_PATH_IN_SANDBOX, "agent", "stage:agent"),
    (islo_agent::RUN_DIR_IN_SANDBOX, "run", "stage:run"),
    ("/dev/null", "null", "/dev/null"),
    ("/dev/zero", "zero", "/dev/zero"),
    ("/dev/full", "full", "/dev/full"),
    ("/dev/tty", "tty", "/dev/tty"),
    ("/dev/random", "random", "/dev/random"),
    ("/dev/urandom", "urandom", "/dev/urandom"),
    // Masked files (`spec::MASKED`): the host's /dev/null where the runtime bound it.
    ("/proc/kcore", "mask-kcore", "/dev/null"),
    ("/proc/keys", "mask-keys", "/dev/null"),
    ("/proc/timer_list", "mask-timer_list", "/dev/null"),
    ("/proc/config.gz", "mask-config", "/dev/null"),
    ("/proc/latency_stats", "mask-latency_stats", "/dev/null"),
    ("/proc/timer_stats", "mask-timer_stats", "/dev/null"),
    ("/proc/sched_debug", "mask-sched_debug", "/dev/null"),
];

/// Each image's size as the dump wrote it, checked before a restore: CRIU's restorer spins for
/// ever on a truncated page image instead of failing.
const SIZES: &str = "sizes.json";

/// The runtime's files of a container, kept with the images.
const RECORD: &[&str] = &["config.json", "seccomp.bpf", "status"];

impl OciDriver {
    fn criu(&self) -> Result<PathBuf, DriverError> {
        if self.runtime_name() != "crun" {
            return Err(DriverError::Host(format!(
                "pausing needs crun as the runtime (this islod runs {})",
                self.runtime_name()
            )));
        }
        super::hostprep::find_program(Path::new("criu")).ok_or_else(|| {
            DriverError::Host(
                "pausing needs CRIU 4 (`criu`), which is not installed \
                 (scripts/test-env.sh builds it)"
                    .into(),
            )
        })
    }

    /// PID 1 of a running sandbox, as the runtime records it.
    fn init_pid(&self, id: &SandboxId) -> Result<u32, DriverError> {
        super::ended::recorded(&self.cfg.runtime_root.join(&id.0))
            .and_then(|(pid, _)| u32::try_from(pid).ok())
            .ok_or_else(|| self.runtime_err("state", id, "no pid in its record".into()))
    }

    /// Checkpoint a running sandbox and take it down (see the module's text).
    pub(super) fn checkpoint(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let id = &spec.id;
        let dir = self.dir(id);
        let criu = self.criu()?;
        let pid = self.init_pid(id)?;
        self.quiesce(id)?;
        let dumped = self.in_ns(id, false, || {
            let (images, fresh) = (dir.join(IMAGES), dir.join("disk/checkpoint.new"));
            let _ = std::fs::remove_dir_all(&fresh);
            self.dump(&criu, id, pid, &fresh, false)?;
            let _ = std::fs::remove_dir_all(&images);
            std::fs::rename(&fresh, &images).map_err(DriverError::io(images.display().to_string()))
        })?;
        if let Err(e) = dumped {
            self.give_socket_back(id);
            return Err(e);
        }
        crate::host::write_atomic(&dir.join(PAUSED), b"", 0o600)
            .map_err(DriverError::io(dir.join(PAUSED).display().to_string()))?;
        self.take_down(id, false)
    }

    /// Save a running sandbox's processes into `out` and let them run on (a memory snapshot).
    /// The agent's run directory (its log, which it holds open) goes along as `out/run`.
    pub(super) fn checkpoint_copy(
        &self,
        spec: &SandboxSpec,
        out: &Path,
    ) -> Result<(), DriverError> {
        let id = &spec.id;
        let criu = self.criu()?;
        let pid = self.init_pid(id)?;
        self.quiesce(id)?;
        let run = self.dir(id).join("disk/run");
        let dumped = self.in_ns(id, false, || {
            self.dump(&criu, id, pid, out, true)?;
            copy_files(&run, &out.join("run"))
                .map_err(DriverError::io("copying the agent's run directory"))
        });
        self.give_socket_back(id);
        let dumped = dumped.and_then(|r| r);
        if dumped.is_err() {
            let _ = std::fs::remove_dir_all(out);
        }
        dumped
    }

    /// Ask the agent to make itself checkpointable; its host socket goes.
    fn quiesce(&self, id: &SandboxId) -> Result<(), DriverError> {
        let host_sock = self.dir(id).join(islo_agent::SOCKET_NAME);
        crate::agent::quiesce(&host_sock, &inside_socket()).map_err(|e| DriverError::Agent {
            id: id.clone(),
            detail: format!("making it ready for a checkpoint: {e}"),
        })?;
        let _ = std::fs::remove_file(&host_sock);
        Ok(())
    }

    /// After a dump that left the processes running (or failed): the agent's host socket.
    fn give_socket_back(&self, id: &SandboxId) {
        if let Err(e) = self.hand_socket(id) {
            tracing::warn!(sandbox = %id, error = %e, "handing the agent its socket back");
        }
    }

    /// [`Self::dump_once`], again (a few times, briefly apart) while CRIU finds a socket of
    /// the host's network namespace still open in the agent: a client connection the quiesce
    /// shut down whose last holder, a thread of the agent, has not closed it yet. A failed dump
    /// leaves the processes running as they were.
    fn dump(
        &self,
        criu: &Path,
        id: &SandboxId,
        pid: u32,
        out: &Path,
        leave_running: bool,
    ) -> Result<(), DriverError> {
        let mut tries = 0;
        loop {
            match self.dump_once(criu, id, pid, out, leave_running) {
                Err(DriverError::Runtime { detail, .. })
                    if tries < 3
                        && detail.contains("Unix socket")
                        && detail.contains("not found") =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                done => return done,
            }
        }
    }

    /// `criu dump` of the tree of `pid` into `out` (made here), with the runtime's record;
    /// `out` is removed on error.
    fn dump_once(
        &self,
        criu: &Path,
        id: &SandboxId,
        pid: u32,
        out: &Path,
        leave_running: bool,
    ) -> Result<(), DriverError> {
        std::fs::create_dir(out).map_err(DriverError::io(out.display().to_string()))?;
        let mut args = os(&["dump", "--tree", &pid.to_string(), "--images-dir"]);
        args.push(out.into());
        args.extend(os(&["--log-file", "dump.log", "--manage-cgroups"]));
        // No network lock (CRIU's runs iptables, ~80 ms each way): nothing reaches the sandbox
        // while it is frozen but islod, which has closed its side, and the gateway, whose
        // connections come back closed.
        args.extend(os(&[
            "--tcp-established",
            "--file-locks",
            "--network-lock",
            "skip",
        ]));
        if leave_running {
            args.extend(os(&["--leave-running"]));
        }
        for (at, key, _) in present_externals(pid) {
            args.extend(os(&["--external", &format!("mnt[{at}]:{key}")]));
        }
        let ran = self
            .host
            .run(criu, &args)
            .map_err(DriverError::io(criu.display().to_string()));
        let failed = match ran {
            Ok(o) if o.success => None,
            Ok(_) => Some(criu_errors(&out.join("dump.log"))),
            Err(e) => Some(e.to_string()),
        };
        let kept = failed
            .map_or_else(|| self.keep_record(id, out), Err)
            .and_then(|()| record_sizes(out).map_err(|e| format!("recording its sizes: {e}")));
        kept.map_err(|why| {
            let _ = std::fs::remove_dir_all(out);
            DriverError::Runtime {
                runtime: "criu".into(),
                action: "dump",
                id: id.clone(),
                detail: why,
            }
        })
    }

    /// A new sandbox from a checkpoint of another (see [`crate::Driver::create_from`]): its
    /// disk, the checkpoint copied onto it and made its own (host ids, hostname, runtime
    /// record, the agent's run directory), then restored as a resume does.
    pub(super) fn fork(&self, spec: &SandboxSpec, checkpoint: &Path) -> Result<(), DriverError> {
        let (id, dir) = (&spec.id, self.dir(&spec.id));
        let _busy = self.disks.busy();
        self.make_disk(spec)?;
        let config = self.runtime_config(spec);
        self.in_ns(id, true, || -> Result<(), DriverError> {
            self.mount_storage(spec)?;
            let images = dir.join(IMAGES);
            let io = |what: &str| DriverError::io(format!("{what} of {id}"));
            crate::host::copy_tree(checkpoint, &images).map_err(io("copying the checkpoint"))?;
            let run = images.join("run");
            copy_files(&run, &dir.join("disk/run")).map_err(io("the agent's run directory"))?;
            for f in std::fs::read_dir(dir.join("disk/run")).map_err(io("the run directory"))? {
                let f = f.map_err(io("the run directory"))?;
                super::userns::own_new_dir(self.host.as_ref(), &f.path(), spec.ids)?;
            }
            let _ = std::fs::remove_dir_all(&run);
            check_sizes(&images).map_err(|why| DriverError::Runtime {
                runtime: "criu".into(),
                action: "restore",
                id: id.clone(),
                detail: format!("the snapshot's checkpoint is damaged: {why}"),
            })?;
            for f in std::fs::read_dir(&images).map_err(io("the checkpoint"))? {
                let (path, name) = match f {
                    Ok(f) => (f.path(), f.file_name().to_string_lossy().into_owned()),
                    Err(e) => return Err(io("the checkpoint")(e)),
                };
                if let (true, Some(ids)) = (name.starts_with("userns-"), spec.ids) {
                    super::criu_image::rebase_userns(&path, ids.base).map_err(io("its ids"))?;
                } else if name.starts_with("utsns-") {
                    super::criu_image::set_hostname(&path, &spec.hostname)
                        .map_err(io("its hostname"))?;
                }
            }
            // The two rewritten images changed size: checked from here on as they are now.
            record_sizes(&images).map_err(io("its images' sizes"))?;
            self.own_record(spec, &images.join("runtime"), &config)
                .map_err(io("its runtime record"))
        })??;
        crate::host::write_atomic(&dir.join(PAUSED), b"", 0o600)
            .map_err(DriverError::io(dir.join(PAUSED).display().to_string()))?;
        self.restore(spec)
    }

    /// Make a checkpoint's runtime record (`runtime/` beside the images) that of `spec`.
    fn own_record(
        &self,
        spec: &SandboxSpec,
        record: &Path,
        config: &serde_json::Value,
    ) -> std::io::Result<()> {
        let text = std::fs::read_to_string(record.join("status"))?;
        let mut status: serde_json::Value =
            serde_json::from_str(&text).map_err(std::io::Error::other)?;
        status["bundle"] = self.dir(&spec.id).to_string_lossy().into_owned().into();
        status["cgroup-path"] = format!("/islo/{}", spec.id).into();
        std::fs::write(record.join("status"), status.to_string())?;
        std::fs::write(record.join("config.json"), config.to_string())
    }

    /// Copy the runtime's record of the container beside the images.
    fn keep_record(&self, id: &SandboxId, images: &Path) -> Result<(), String> {
        let (from, to) = (self.cfg.runtime_root.join(&id.0), images.join("runtime"));
        std::fs::create_dir(&to).map_err(|e| format!("{}: {e}", to.display()))?;
        for f in RECORD {
            let src = from.join(f);
            if src.exists() {
                std::fs::copy(&src, to.join(f)).map_err(|e| format!("{}: {e}", src.display()))?;
            }
        }
        Ok(())
    }

    /// Restore a paused sandbox (see the module's text); on error nothing of it runs.
    pub(super) fn restore(&self, spec: &SandboxSpec) -> Result<(), DriverError> {
        let id = &spec.id;
        let dir = self.dir(id);
        let criu = self.criu()?;
        let t = std::time::Instant::now();
        let restored = self
            .in_ns(id, true, || self.restore_in_ns(&criu, spec))
            .and_then(|r| r);
        let restored_at = t.elapsed();
        let pid = match restored {
            Ok(pid) => pid,
            Err(e) => {
                let _ = self.take_down(id, false);
                return Err(e);
            }
        };
        let linked = self.link_restored(spec, pid);
        let linked_at = t.elapsed();
        let linked = linked
            .and_then(|()| self.readopt(id, pid))
            .and_then(|()| self.hand_socket(id));
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(sandbox = %id, restore_ms = ms(restored_at),
            link_ms = ms(linked_at - restored_at), adopt_ms = ms(t.elapsed() - linked_at),
            "restored");
        if let Err(e) = linked {
            // PID 1 of a pid namespace: its end ends every process restored with it.
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            let _ = self.take_down(id, false);
            return Err(e);
        }
        let _ = std::fs::remove_file(dir.join(PAUSED));
        self.in_ns(id, false, || std::fs::remove_dir_all(dir.join(IMAGES)))?
            .map_err(DriverError::io(format!("removing the checkpoint of {id}")))
    }

    /// In the sandbox's mount namespace: mount its storage, stage the mount sources and
    /// run `criu restore`; the new PID 1 on the host.
    fn restore_in_ns(&self, criu: &Path, spec: &SandboxSpec) -> Result<u32, DriverError> {
        let dir = self.dir(&spec.id);
        let t = std::time::Instant::now();
        self.mount_storage(spec)?;
        tracing::debug!(sandbox = %spec.id, mount_ms = t.elapsed().as_secs_f64() * 1e3, "mounted for a restore");
        let images = dir.join(IMAGES);
        if !images.join("runtime/status").exists() {
            return Err(DriverError::Host(format!(
                "sandbox {} has no checkpoint to resume from",
                spec.id
            )));
        }
        check_sizes(&images).map_err(|why| DriverError::Runtime {
            runtime: "criu".into(),
            action: "restore",
            id: spec.id.clone(),
            detail: format!("the checkpoint is damaged: {why}"),
        })?;
        self.stage(&dir)?;
        let pidfile = images.join("restored.pid");
        let _ = std::fs::remove_file(&pidfile);
        let mut args = os(&["restore", "--images-dir"]);
        args.push(images.clone().into());
        args.extend(os(&["--log-file", "restore.log", "--root"]));
        args.push(Path::new(STAGE).join("root").into());
        args.extend(os(&["--manage-cgroups", "--tcp-close", "--file-locks"]));
        args.extend(os(&["--network-lock", "skip"]));
        args.extend(os(&["--cgroup-root", &format!("/islo/{}", spec.id)]));
        args.extend(os(&[
            "--restore-detached",
            "--empty-ns",
            "net",
            "--pidfile",
        ]));
        args.push(pidfile.clone().into());
        for (_, key, source) in EXTERNAL {
            let source = source.replace("stage:", &format!("{STAGE}/"));
            args.extend(os(&["--external", &format!("mnt[{key}]:{source}")]));
        }
        let out = self.host.run(criu, &args);
        let _ = self.host.unmount(Path::new(STAGE));
        let out = out.map_err(DriverError::io(criu.display().to_string()))?;
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        match pid {
            Some(pid) if out.success => Ok(pid),
            _ => Err(DriverError::Runtime {
                runtime: "criu".into(),
                action: "restore",
                id: spec.id.clone(),
                detail: criu_errors(&images.join("restore.log")),
            }),
        }
    }

    /// Bind the root, the agent and its run directory into a tmpfs every user can traverse.
    fn stage(&self, dir: &Path) -> Result<(), DriverError> {
        let stage = Path::new(STAGE);
        let _ = self.host.unmount(stage);
        std::fs::create_dir_all(stage).map_err(DriverError::io(STAGE))?;
        let tmpfs = Mount::Tmpfs {
            target: stage.to_path_buf(),
            mode: 0o711,
            size_kib: 64,
        };
        self.host.mount(&tmpfs).map_err(DriverError::io(STAGE))?;
        let agent = stage.join("agent");
        std::fs::write(&agent, b"").map_err(DriverError::io(agent.display().to_string()))?;
        for (source, target) in [
            (self.cfg.agent_binary.clone(), agent),
            (dir.join("disk/run"), stage.join("run")),
            (dir.join("rootfs"), stage.join("root")),
        ] {
            if !target.exists() {
                std::fs::create_dir(&target)
                    .map_err(DriverError::io(target.display().to_string()))?;
            }
            self.host
                .mount(&Mount::Bind { source, target })
                .map_err(DriverError::io(format!(
                    "staging the restore under {STAGE}"
                )))?;
        }
        Ok(())
    }

    /// Link the restored network namespace to the host, as a start does.
    fn link_restored(&self, spec: &SandboxSpec, pid: u32) -> Result<(), DriverError> {
        match &spec.network {
            // Recorded first, so that a removal takes it down (its pinned namespace too)
            // however far the linking gets.
            Some(n) => self.record_network(&spec.id, n).and_then(|()| {
                self.in_ns(&spec.id, false, || {
                    super::net::attach_restored(
                        self.host.as_ref(),
                        &self.dir(&spec.id),
                        &spec.id,
                        n,
                        pid,
                    )
                })?
            }),
            None => Ok(()),
        }
    }

    /// Write the runtime's record back, naming the restored PID 1, so the runtime manages the
    /// container again (state, pause, delete).
    fn readopt(&self, id: &SandboxId, pid: u32) -> Result<(), DriverError> {
        let images = self.dir(id).join(IMAGES).join("runtime");
        let to = self.cfg.runtime_root.join(&id.0);
        let start = super::ended::start_time(pid).ok_or_else(|| DriverError::Agent {
            id: id.clone(),
            detail: "the restored PID 1 ended at once".into(),
        })?;
        let copied = self.in_ns(id, false, || -> std::io::Result<serde_json::Value> {
            std::fs::create_dir_all(&to)?;
            for f in &RECORD[..2] {
                if images.join(f).exists() {
                    std::fs::copy(images.join(f), to.join(f))?;
                }
            }
            let text = std::fs::read_to_string(images.join("status"))?;
            serde_json::from_str(&text).map_err(std::io::Error::other)
        })?;
        let mut status = copied.map_err(DriverError::io(format!("the runtime record of {id}")))?;
        status["pid"] = pid.into();
        status["process-start-time"] = start.into();
        let path = to.join("status");
        crate::host::write_atomic(&path, status.to_string().as_bytes(), 0o700)
            .map_err(DriverError::io(path.display().to_string()))
    }

    /// Bind the agent's socket on the host again and hand it over (it listens inside the
    /// sandbox until then).
    fn hand_socket(&self, id: &SandboxId) -> Result<(), DriverError> {
        let dir = self.dir(id);
        let host_sock = dir.join(islo_agent::SOCKET_NAME);
        let _ = std::fs::remove_file(&host_sock);
        let listener = std::os::unix::net::UnixListener::bind(&host_sock)
            .map_err(DriverError::io(host_sock.display().to_string()))?;
        std::fs::set_permissions(
            &host_sock,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .map_err(DriverError::io(host_sock.display().to_string()))?;
        let inside = dir.join("disk/run").join(islo_agent::SOCKET_NAME);
        self.in_ns(id, false, || {
            crate::agent::hand_listener(&inside, &listener)
        })?
        .map_err(|e| DriverError::Agent {
            id: id.clone(),
            detail: format!("handing it its socket: {e}"),
        })
    }
}

/// The [`EXTERNAL`] mounts the sandbox of `pid` has (a sandbox without a user namespace has
/// device nodes, not bound ones).
fn present_externals(pid: u32) -> Vec<(&'static str, &'static str, &'static str)> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(crate::host::unescape_mountinfo)
        .collect();
    EXTERNAL
        .iter()
        .copied()
        .filter(|(at, _, _)| points.iter().any(|p| p == at))
        .collect()
}

/// What CRIU's log says went wrong (its error lines, less the harmless rlimit one).
fn criu_errors(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Error") && !l.contains("RLIMIT_NOFILE"))
        .map(|l| l.split_once("): ").map_or(l, |(_, m)| m))
        .take(4)
        .collect();
    if errors.is_empty() {
        return format!("see {}", log.display());
    }
    errors.join("; ")
}

/// The images' sizes (the top directory's regular files), by name.
fn sizes(dir: &Path) -> std::io::Result<std::collections::BTreeMap<String, u64>> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_file() && name.ends_with(".img") {
            out.insert(name, e.metadata()?.len());
        }
    }
    Ok(out)
}

fn record_sizes(dir: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string(&sizes(dir)?).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(SIZES), text)
}

/// Whether the images in `dir` are as the dump wrote them (in size); what differs if not.
fn check_sizes(dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join(SIZES)).map_err(|e| format!("{SIZES}: {e}"))?;
    let want: std::collections::BTreeMap<String, u64> =
        serde_json::from_str(&text).map_err(|e| format!("{SIZES}: {e}"))?;
    let have = sizes(dir).map_err(|e| e.to_string())?;
    for (name, size) in &want {
        match have.get(name) {
            Some(s) if s == size => {}
            Some(s) => return Err(format!("{name} is {s} bytes, the dump wrote {size}")),
            None => return Err(format!("{name} is missing")),
        }
    }
    Ok(())
}

/// The regular files of `from` copied into `to` (made if missing).
fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_or_missing_image_is_found_before_a_restore() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("pages-1.img"), b"0123456789").unwrap();
        std::fs::write(d.path().join("core-1.img"), b"core").unwrap();
        std::fs::write(d.path().join("dump.log"), b"log").unwrap();
        record_sizes(d.path()).unwrap();
        check_sizes(d.path()).unwrap();
        std::fs::write(d.path().join("dump.log"), b"longer log").unwrap();
        check_sizes(d.path()).unwrap();
        std::fs::write(d.path().join("pages-1.img"), b"").unwrap();
        let why = check_sizes(d.path()).unwrap_err();
        assert!(why.contains("pages-1.img is 0 bytes"), "{why}");
        std::fs::remove_file(d.path().join("pages-1.img")).unwrap();
        assert!(check_sizes(d.path()).unwrap_err().contains("missing"));
        std::fs::remove_file(d.path().join(SIZES)).unwrap();
        assert!(check_sizes(d.path()).is_err(), "no record, no restore");
    }
}
