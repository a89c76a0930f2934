//! The `gvisor` isolation class: the sandbox runs under `runsc`, whose user-space kernel (the
//! Sentry) answers its system calls; the host's kernel sees only the few the Sentry makes,
//! under runsc's own seccomp filter.
//!
//! What differs from the `container` class, and why (Debian's runsc of 2022 on this host):
//!
//! - **Platform `ptrace`** by default (`isolation.gvisor_platform` picks another): `kvm` hangs
//!   at boot here (no nested virtualisation), and this runsc predates `systrap`.
//! - **Network `host`, run from inside the sandbox's network namespace.** runsc's own network
//!   stack (`sandbox`) refuses to start on this kernel (it takes every namespace for the root
//!   one), so the Sentry makes its network calls on host sockets, which are in the sandbox's
//!   namespace (runsc is started from a thread that entered it): the veth, the nftables rules
//!   and the gateway apply exactly as to a container, and nothing else is reachable.
//! - **The agent binds its own socket** (`/.islo/sock/agent.sock`, the host's
//!   `<sandbox>/sock/agent.sock` through runsc's gofer, `--host-uds=create`): runsc cannot hand
//!   a listening socket to PID 1. Once the agent answers, islod makes that directory immutable
//!   ([`OciDriver::seal`]): it is outside the sandbox's disk, and root inside could otherwise
//!   fill it or put a socket of its own in the agent's place.
//! - **No user namespace on the host and no seccomp profile of ours**: the Sentry runs in a
//!   user namespace of runsc's making, as nobody, under runsc's seccomp filter; the sandbox's
//!   root is root of the Sentry only.
//! - **Shared file access** (`--file-access=shared`): islod writes into the root from the
//!   host (uploads, `resolv.conf`, the CA bundle), so the Sentry revalidates what it cached.
//! - **No pause** (CRIU cannot save a Sentry; runsc's own checkpoint is not wired up).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::OciDriver;
use crate::host::Host;
use crate::{DriverError, Isolation, SandboxSpec};

/// The file in a sandbox's directory naming its class (absent: `container`).
pub const CLASS_FILE: &str = "isolation";

/// The platform runsc runs the Sentry on unless configured: the one that works everywhere.
pub const DEFAULT_PLATFORM: &str = "ptrace";

/// A usable runsc.
#[derive(Debug, Clone)]
pub struct Runsc {
    pub program: PathBuf,
    /// runsc's own state (`--root`), apart from crun's.
    pub root: PathBuf,
    /// `ptrace`, or `kvm` / `systrap` where the host and runsc have them.
    pub platform: String,
}

impl Runsc {
    /// runsc on `PATH` (or at `configured`), checked to answer `--version`.
    pub fn find(
        host: &dyn Host,
        configured: Option<&Path>,
        platform: Option<&str>,
        root: PathBuf,
    ) -> Result<Self, String> {
        let platform = platform.unwrap_or(DEFAULT_PLATFORM).to_string();
        if !["ptrace", "kvm", "systrap"].contains(&platform.as_str()) {
            return Err(format!(
                "unknown gVisor platform {platform:?} (ptrace, kvm or systrap)"
            ));
        }
        if platform == "kvm" && !Path::new("/dev/kvm").exists() {
            return Err("the kvm platform needs /dev/kvm".into());
        }
        let wanted = configured.unwrap_or(Path::new("runsc"));
        let program = super::hostprep::find_program(wanted).ok_or_else(|| {
            format!(
                "{} not found (install Debian's `runsc` package)",
                wanted.display()
            )
        })?;
        let out = host
            .run(&program, &["--version".into()])
            .map_err(|e| format!("running {}: {e}", program.display()))?;
        if !out.success {
            return Err(format!(
                "{} --version failed: {}",
                program.display(),
                out.stderr.trim()
            ));
        }
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        Ok(Self {
            program,
            root,
            platform,
        })
    }

    /// runsc's flags (before the subcommand) for a sandbox whose directory is `dir`.
    pub fn args(&self, dir: &Path, cmd: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "--root".into(),
            self.root.clone().into(),
            "--log".into(),
            dir.join("runtime.log").into(),
            format!("--platform={}", self.platform).into(),
            // Host networking from the host's namespace would be the host's network: a sandbox
            // without a link (no record of one) gets gVisor's loopback alone.
            match dir.join(super::NETWORK_FILE).exists() {
                true => "--network=host".into(),
                false => "--network=none".into(),
            },
            "--host-uds=create".into(),
            "--file-access=shared".into(),
            "--overlay2=none".into(),
        ];
        if let Some(d) = std::env::var_os("ISLO_RUNSC_DEBUG_LOG") {
            // runsc's own debug logs, one file per command, for finding why a start failed.
            v.push("--debug".into());
            let mut flag = OsString::from("--debug-log=");
            flag.push(d);
            v.push(flag);
        }
        v.extend(cmd.iter().map(OsString::from));
        v
    }
}

/// The class a sandbox was made in, from its directory.
pub fn class_of(dir: &Path) -> Isolation {
    match std::fs::read_to_string(dir.join(CLASS_FILE)) {
        Ok(s) => Isolation::parse(s.trim()).unwrap_or_default(),
        Err(_) => Isolation::Container,
    }
}

/// Record a new sandbox's class in its directory (only a non-default one is written).
pub fn record_class(dir: &Path, class: Isolation) -> Result<(), DriverError> {
    if class.is_default() {
        return Ok(());
    }
    let path = dir.join(CLASS_FILE);
    crate::host::write_atomic(&path, class.as_str().as_bytes(), 0o600)
        .map_err(DriverError::io(path.display().to_string()))
}

/// The host directory bound at [`islo_agent::SOCKET_DIR_IN_SANDBOX`], beside the sandbox's
/// directory's other host-side files (its disk is mounted in the sandbox's own mount
/// namespace, out of islod's reach).
pub const SOCKET_DIR: &str = "sock";

/// Turn the container class's configuration into runsc's: what runsc provides itself
/// (seccomp, the cgroup namespace and mount, the user namespace) goes, and the agent binds its
/// own socket, in a directory of the host's, instead of being handed one.
pub fn adapt_config(config: &mut Value, dir: &Path) {
    let socket = Path::new(islo_agent::SOCKET_DIR_IN_SANDBOX).join(islo_agent::SOCKET_NAME);
    config["process"]["args"] =
        json!([islo_agent::AGENT_PATH_IN_SANDBOX, socket.to_string_lossy()]);
    if let Some(env) = config["process"]["env"].as_array_mut() {
        let handed = format!("{}=", islo_agent::LISTEN_FD_ENV);
        env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&handed)));
    }
    let linux = &mut config["linux"];
    if let Some(l) = linux.as_object_mut() {
        l.remove("seccomp");
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
    }
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "cgroup" && n["type"] != "user");
    }
    if let Some(mounts) = config["mounts"].as_array_mut() {
        mounts.retain(|m| m["type"] != "cgroup" && m["type"] != "mqueue");
        // runsc puts a tmpfs of its own (in the Sentry's memory) on an empty /tmp: bound to the
        // root's own, /tmp is on the sandbox's disk as in the container class (its quota,
        // snapshots, `islo cp` into it).
        if root_tmp(dir) {
            mounts.push(json!({
                "destination": "/tmp", "type": "bind",
                "source": dir.join("rootfs/tmp").to_string_lossy(),
                "options": ["bind", "nosuid", "nodev"]
            }));
        }
        mounts.push(json!({
            "destination": islo_agent::SOCKET_DIR_IN_SANDBOX, "type": "bind",
            "source": dir.join(SOCKET_DIR).to_string_lossy(),
            "options": ["bind", "nosuid", "nodev", "noexec"]
        }));
    }
    config["annotations"] = json!({"dev.islo.isolation": "gvisor"});
}

/// Whether the root's `/tmp` (in the mounted overlay) is a directory to bind, made (mode
/// 1777) if missing. Never through a symlink: an image's `/tmp -> /x` would name the host's
/// `/x` here, so such a sandbox keeps runsc's tmpfs.
fn root_tmp(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.join("rootfs/tmp");
    match std::fs::symlink_metadata(&tmp) {
        Ok(m) => m.is_dir(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.join("rootfs").is_dir() => {
            std::fs::create_dir(&tmp)
                .and_then(|()| std::fs::set_permissions(&tmp, PermissionsExt::from_mode(0o1777)))
                .is_ok()
        }
        Err(_) => false,
    }
}

/// The error for what the class cannot do here.
pub fn unsupported(what: &'static str, why: &str) -> DriverError {
    DriverError::Unsupported {
        class: Isolation::Gvisor,
        what,
        why: why.to_string(),
    }
}

/// The host path where a gVisor sandbox's agent listens.
pub fn agent_socket(dir: &Path) -> PathBuf {
    dir.join(SOCKET_DIR).join(islo_agent::SOCKET_NAME)
}

impl OciDriver {
    /// Once the agent listens, nothing more may be made in, removed from or renamed in the
    /// socket directory: it is the host's, outside the sandbox's disk quota, and root inside
    /// could otherwise fill it or put a socket of its own in the agent's place.
    pub(super) fn seal(&self, dir: &Path) -> Result<(), DriverError> {
        let d = dir.join(SOCKET_DIR);
        self.host.set_immutable(&d, true).map_err(|e| {
            DriverError::Host(format!(
                "making {} immutable (the gvisor class needs a state directory on a file \
                 system with the immutable flag: ext4, xfs, btrfs, tmpfs): {e}",
                d.display()
            ))
        })
    }

    /// Undo [`Self::seal`] (before a start or a removal); a directory not there is fine.
    pub(super) fn unseal(&self, dir: &Path) -> Result<(), DriverError> {
        let d = dir.join(SOCKET_DIR);
        match self.host.set_immutable(&d, false) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other.map_err(DriverError::io(d.display().to_string())),
        }
    }

    /// Start a gVisor sandbox whose storage and network are ready: runsc from a thread in its
    /// network namespace (see the module's notes), detached.
    pub(super) fn run_gvisor(&self, spec: &SandboxSpec, dir: &Path) -> Result<(), DriverError> {
        let runsc = self.runsc()?;
        // The agent binds its socket anew; one left by an earlier run only refuses.
        let sock = agent_socket(dir);
        self.unseal(dir)?;
        let _ = std::fs::remove_file(&sock);
        if let Some(d) = sock.parent() {
            std::fs::create_dir_all(d).map_err(DriverError::io(d.display().to_string()))?;
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(DriverError::io(d.display().to_string()))?;
        }
        let bundle = dir.to_string_lossy().into_owned();
        let args = runsc.args(dir, &["run", "--detach", "--bundle", &bundle, &spec.id.0]);
        let netns = spec
            .network
            .as_ref()
            .map(|_| super::net::netns_path(&spec.id));
        let log = dir.join("agent.log");
        let ok = match &netns {
            Some(ns) => self
                .host
                .run_detached_in_netns(ns, &runsc.program, &args, &log),
            None => self.host.run_detached(&runsc.program, &args, &log, None),
        }
        .map_err(DriverError::io(runsc.program.display().to_string()))?;
        if !ok {
            return Err(self.run_failed(&spec.id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_loses_what_runsc_provides() {
        let spec = crate::conformance::spec("box", vec![]);
        let params = super::super::spec::tests::params(Some("/s/userns"));
        let mut c = super::super::spec::config(&spec, &params);
        adapt_config(&mut c, Path::new("/s/box"));
        assert!(c["linux"].get("seccomp").is_none());
        let ns: Vec<&str> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(!ns.contains(&"user") && !ns.contains(&"cgroup"));
        for want in ["pid", "network", "ipc", "uts", "mount"] {
            assert!(ns.contains(&want), "{want}");
        }
        let env = c["process"]["env"].as_array().unwrap();
        assert!(
            !env.iter()
                .any(|e| e.as_str().unwrap().starts_with(islo_agent::LISTEN_FD_ENV))
        );
        assert_eq!(c["process"]["args"][1], "/.islo/sock/agent.sock");
        assert_eq!(c["process"]["noNewPrivileges"], true);
        assert!(c["linux"]["resources"]["memory"]["limit"].is_u64());
        let mounts = c["mounts"].as_array().unwrap();
        let sock = mounts
            .iter()
            .find(|m| m["destination"] == islo_agent::SOCKET_DIR_IN_SANDBOX)
            .unwrap();
        assert_eq!(sock["source"], "/s/box/sock");
        assert!(
            !mounts.iter().any(|m| m["destination"] == "/tmp"),
            "no root mounted: no /tmp to bind"
        );
    }

    #[test]
    fn tmp_is_bound_only_when_it_is_a_real_directory() {
        let with = |make: &dyn Fn(&Path)| {
            let d = tempfile::tempdir().unwrap();
            std::fs::create_dir(d.path().join("rootfs")).unwrap();
            make(&d.path().join("rootfs"));
            let spec = crate::conformance::spec("box", vec![]);
            let mut c = super::super::spec::config(&spec, &super::super::spec::tests::params(None));
            adapt_config(&mut c, d.path());
            let tmp = c["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["destination"] == "/tmp");
            (tmp, d)
        };
        let (bound, _) = with(&|r| std::fs::create_dir(r.join("tmp")).unwrap());
        assert!(bound);
        // Missing: made with the sticky bit, and bound.
        let (bound, d) = with(&|_| {});
        assert!(bound);
        let mode = std::fs::metadata(d.path().join("rootfs/tmp"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
            0o1777
        );
        // A symlink would name a host path: never bound.
        let (bound, _) = with(&|r| std::os::unix::fs::symlink("/etc", r.join("tmp")).unwrap());
        assert!(!bound);
    }

    #[test]
    fn a_platform_runsc_lacks_or_the_host_cannot_run_is_refused_with_why() {
        let host = crate::host::RealHost;
        let root = tempfile::tempdir().unwrap();
        let e = Runsc::find(&host, None, Some("vm"), root.path().into()).unwrap_err();
        assert!(e.contains("ptrace, kvm or systrap"), "{e}");
        let e = Runsc::find(
            &host,
            Some(Path::new("/nonexistent/runsc")),
            None,
            root.path().into(),
        )
        .unwrap_err();
        assert!(e.contains("not found"), "{e}");
    }

    #[test]
    fn the_class_is_read_back_from_the_directory() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(class_of(d.path()), Isolation::Container);
        record_class(d.path(), Isolation::Container).unwrap();
        assert!(!d.path().join(CLASS_FILE).exists());
        record_class(d.path(), Isolation::Gvisor).unwrap();
        assert_eq!(class_of(d.path()), Isolation::Gvisor);
    }
}
