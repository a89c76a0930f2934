//! The driver contract.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Runtime identity of a sandbox (islod uses the sandbox's UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SandboxId(pub String);

impl std::fmt::Display for SandboxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resource limits enforced by the back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub vcpus: u32,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub pids: u32,
}

/// Everything a back end needs to build and start a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub id: SandboxId,
    pub hostname: String,
    /// Unpacked image layers, lowest first. Never written.
    pub layers: Vec<PathBuf>,
    pub limits: Limits,
    /// The default non-root user created in the sandbox if the image lacks it.
    pub user: String,
    pub uid: u32,
    /// The sandbox's network: a veth to the host, where the gateway listens. `None`: loopback
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// The sandbox's own host ids: it runs in a user namespace mapping its ids `0..size` to
    /// these. `None`: no user namespace (its root is the host's root; reduced isolation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<IdMap>,
    /// What stands between its code and the host's kernel.
    #[serde(default, skip_serializing_if = "Isolation::is_default")]
    pub isolation: Isolation,
    /// Started ahead of the create that will take it: its making and start run at the host's
    /// lowest CPU priority (nice 19), and so does its agent until [`Driver::hand_over`], so that
    /// the creates and commands people wait for go first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ahead: bool,
}

/// A sandbox's isolation class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Namespaces, a user namespace, cgroups, capabilities and seccomp under crun or runc:
    /// its system calls reach the host's kernel, filtered.
    #[default]
    Container,
    /// gVisor (`runsc`): a kernel in user space answers its system calls; the host's kernel
    /// sees only the few gVisor itself makes.
    Gvisor,
}

impl Isolation {
    /// Every class, in the order they are listed.
    pub const ALL: [Isolation; 2] = [Isolation::Container, Isolation::Gvisor];

    pub fn is_default(&self) -> bool {
        *self == Isolation::Container
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Isolation::Container => "container",
            Isolation::Gvisor => "gvisor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SandboxSpec {
    /// `Err` when its class cannot take another hostname while it runs (gVisor's kernel
    /// keeps its own).
    pub fn renamable(&self) -> Result<(), DriverError> {
        match self.isolation {
            Isolation::Gvisor => Err(DriverError::Unsupported {
                class: self.isolation,
                what: "renaming a running sandbox",
                why: "its kernel is gVisor's; the name changes at its next start".into(),
            }),
            Isolation::Container => Ok(()),
        }
    }

    /// `Err` when its class keeps no processes across a pause or a memory snapshot (`what`):
    /// gVisor's kernel is not something CRIU can save, in any back end.
    pub fn checkpointable(&self, what: &'static str) -> Result<(), DriverError> {
        match self.isolation {
            Isolation::Gvisor => Err(DriverError::Unsupported {
                class: self.isolation,
                what,
                why: "CRIU cannot save gVisor's kernel; stop the sandbox instead (its files \
                      are kept) or use the container class"
                    .into(),
            }),
            Isolation::Container => Ok(()),
        }
    }
}

/// Whether this host can run sandboxes of one class: `Ok` names what runs them (`crun`,
/// `runsc (ptrace)`), `Err` says what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSupport {
    pub class: Isolation,
    pub runtime: Result<String, String>,
}

/// How a sandbox's user and group ids map to the host's: id `n` inside is `base + n` on the
/// host for `n < size`; host ids outside the range are unmapped inside (shown as `nobody`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub base: u32,
    pub size: u32,
}

/// The id the kernel shows for a host id with no mapping inside (`nobody`).
pub const OVERFLOW_ID: u32 = 65534;

impl IdMap {
    /// Ids per sandbox: the 16-bit id space images are made for.
    pub const SIZE: u32 = 65536;

    /// No user namespace: every id is itself.
    pub const IDENTITY: IdMap = IdMap {
        base: 0,
        size: u32::MAX,
    };

    /// The map of `ids` (`None` is [`IdMap::IDENTITY`]).
    pub fn of(ids: Option<IdMap>) -> IdMap {
        ids.unwrap_or(Self::IDENTITY)
    }

    /// The host id of `inside`, if the sandbox has it.
    pub fn to_host(&self, inside: u32) -> Option<u32> {
        (inside < self.size)
            .then(|| self.base.checked_add(inside))
            .flatten()
    }

    /// What the sandbox sees of the host id `host`.
    pub fn to_inside(&self, host: u32) -> u32 {
        host.checked_sub(self.base)
            .filter(|n| *n < self.size)
            .unwrap_or(OVERFLOW_ID)
    }

    /// Move `host`, owned as `self` maps it, to where `to` maps the same inside id; ids
    /// outside `self` are left as they are.
    pub fn carry(&self, host: u32, to: &IdMap) -> u32 {
        match host.checked_sub(self.base).filter(|n| *n < self.size) {
            Some(n) => to.to_host(n).unwrap_or(host),
            None => host,
        }
    }
}

/// A sandbox's link to the host: a veth pair, the sandbox end `eth0` in its own network
/// namespace, routed through the host end (which islod's gateway answers for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Host-side interface name (at most 15 bytes; its prefix names the installation).
    pub host_if: String,
    pub host_addr: std::net::Ipv4Addr,
    pub sandbox_addr: std::net::Ipv4Addr,
    pub prefix_len: u8,
}

/// What a back end sees of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Processes run and the agent answers.
    Running,
    /// Processes exist but are frozen (cgroup freezer), as while a snapshot is cut; a crash
    /// at that moment leaves it so until [`Driver::thaw`].
    Frozen,
    /// Storage exists, nothing runs.
    Stopped,
    /// Nothing runs; its processes wait in a checkpoint for [`Driver::resume`].
    Paused,
    /// No trace of it.
    Missing,
}

/// Errors of a back end.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("sandbox {0} already exists")]
    AlreadyExists(SandboxId),
    #[error("sandbox {0} not found")]
    NotFound(SandboxId),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{runtime} {action} failed for sandbox {id}: {detail}")]
    Runtime {
        runtime: String,
        action: &'static str,
        id: SandboxId,
        detail: String,
    },
    #[error("agent of sandbox {id} did not answer: {detail}")]
    Agent { id: SandboxId, detail: String },
    #[error("host is not ready for sandboxes: {0}")]
    Host(String),
    /// What a class of sandboxes cannot do here (pausing under gVisor, a class the host
    /// lacks).
    #[error("{what} is not available for isolation class {class}: {why}")]
    Unsupported {
        class: Isolation,
        what: &'static str,
        why: String,
    },
}

impl DriverError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// A sandbox back end. Calls block (they spawn runtimes and mount file systems); callers in
/// async code run them on a blocking thread.
pub trait Driver: Send + Sync + 'static {
    /// Short name for status output (`crun`, `runc`, `fake`).
    fn name(&self) -> String;
    /// Build storage for a new sandbox and start it; on return its agent answers.
    /// On error nothing of it is left behind.
    fn create(&self, spec: &SandboxSpec) -> Result<(), DriverError>;
    /// Start a stopped sandbox again, its files intact.
    fn start(&self, spec: &SandboxSpec) -> Result<(), DriverError>;
    /// Kill every process; keep the writable layer. Stopping a stopped sandbox is a no-op; a
    /// paused one loses its processes and keeps its files.
    fn stop(&self, id: &SandboxId) -> Result<(), DriverError>;
    /// Remove every trace: processes, mounts, cgroups, namespaces, files. Idempotent.
    fn destroy(&self, id: &SandboxId) -> Result<(), DriverError>;
    /// Checkpoint every process of a running sandbox to its own storage, then end them and
    /// free what they held ([`Observed::Paused`]). On error it runs on as before, and the
    /// error says which process and why.
    fn pause(&self, spec: &SandboxSpec) -> Result<(), DriverError>;
    /// Bring a paused sandbox's processes back; on return its agent answers. On error nothing
    /// of it runs and its files are intact: a plain [`Driver::start`] works.
    fn resume(&self, spec: &SandboxSpec) -> Result<(), DriverError>;
    /// Save a running sandbox's processes into `out` (a new directory) while they run on: a
    /// memory snapshot, for [`Driver::create_from`].
    fn checkpoint_to(&self, spec: &SandboxSpec, out: &std::path::Path) -> Result<(), DriverError>;
    /// Create a sandbox whose processes come running from a checkpoint of another sandbox
    /// ([`Driver::checkpoint_to`]; `spec.layers` hold that sandbox's files as they were), with
    /// its own name, ids and network. On error nothing of it is left behind.
    fn create_from(
        &self,
        spec: &SandboxSpec,
        checkpoint: &std::path::Path,
    ) -> Result<(), DriverError>;
    /// Let a [`Observed::Frozen`] sandbox's processes run again; a no-op for any other.
    fn thaw(&self, id: &SandboxId) -> Result<(), DriverError>;
    /// Hand a running sandbox started ahead ([`SandboxSpec::ahead`]) to the create that takes
    /// it: it answers to `hostname` (its next start uses its spec's again) and its processes
    /// get the host's normal CPU priority. `NotFound` when it does not run.
    fn hand_over(&self, spec: &SandboxSpec, hostname: &str) -> Result<(), DriverError>;
    /// Each isolation class and whether this host offers it.
    fn isolation_classes(&self) -> Vec<ClassSupport> {
        vec![ClassSupport {
            class: Isolation::Container,
            runtime: Ok(self.name()),
        }]
    }
    /// Whether sandboxes with [`SandboxSpec::ids`] can run here: `Err` names what the host
    /// lacks (user namespaces, idmapped mounts on the file system of the layers).
    fn user_namespaces(&self) -> Result<(), String>;
    /// Report what is there.
    fn observe(&self, id: &SandboxId) -> Result<Observed, DriverError>;
    /// [`Driver::observe`] of many sandboxes at once (islod's start-up), in the order given;
    /// a back end that can ask once for all overrides it.
    fn observe_all(&self, ids: &[SandboxId]) -> Result<Vec<Observed>, DriverError> {
        ids.iter().map(|id| self.observe(id)).collect()
    }
    /// Host path of the sandbox's agent socket.
    fn agent_socket(&self, id: &SandboxId) -> PathBuf;
    /// A running sandbox's root filesystem as the host reaches it (file transfer reaches
    /// into it with `openat2(RESOLVE_IN_ROOT)`); `None` when it is not mounted.
    fn rootfs(&self, id: &SandboxId) -> Option<Rootfs>;
    /// Write the sandbox's changes to its image (its writable layer) as an OCI layer tar (see
    /// [`crate::layer_tar`]). A running sandbox's processes are frozen while it is written,
    /// so the layer is one instant's state; a stopped one's storage is mounted meanwhile.
    /// Host ids are written as the sandbox sees them (`spec.ids`), so the layer is owned as
    /// inside and can start a sandbox with any other range.
    fn export_changes(
        &self,
        spec: &SandboxSpec,
        out: &mut dyn std::io::Write,
    ) -> Result<crate::layer_tar::LayerStats, DriverError>;
    /// A descriptor that becomes readable when the running sandbox's PID 1 (its agent) ends:
    /// a pidfd, so a watchdog learns of the end without waking the agent. `None` where the
    /// back end has none to give (the caller asks the agent instead).
    fn end_notice(&self, _id: &SandboxId) -> Option<std::os::fd::OwnedFd> {
        None
    }
    /// What a running sandbox uses now, where the back end can tell (`None` otherwise).
    fn usage(&self, _id: &SandboxId) -> Option<Usage> {
        None
    }
}

/// A sandbox's resource use, as its cgroup counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Memory charged to it now (page cache included).
    pub memory_bytes: u64,
    /// CPU time used since it started, in microseconds.
    pub cpu_usec: u64,
}

/// A path to a sandbox's root filesystem, valid while this value lives: a back end whose
/// mounts are not in islod's own mount namespace hands a descriptor of the directory, reached
/// through `/proc/self/fd/N`.
#[derive(Debug)]
pub struct Rootfs {
    path: PathBuf,
    _held: Option<std::os::fd::OwnedFd>,
}

impl Rootfs {
    /// A directory islod reaches by its path.
    pub fn at(path: PathBuf) -> Self {
        Self { path, _held: None }
    }

    /// A directory reached through the open descriptor `dir`.
    pub fn held(dir: std::os::fd::OwnedFd) -> Self {
        let path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&dir)
        ));
        Self {
            path,
            _held: Some(dir),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
