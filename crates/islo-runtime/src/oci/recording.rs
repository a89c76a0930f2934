//! A [`Host`] that records what the OCI driver asks of it instead of doing it, so the
//! driver's decisions (which mounts with which options, in which order, what is joined, what
//! is undone) are tested without root. It keeps just enough state to answer: what is mounted,
//! which containers "run" (`RUNTIME state` answers from that), and for `run -d` it serves the
//! real agent protocol on the socket the driver hands over, as PID 1 would.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::IdMap;
use crate::host::{Host, Mount, RunOutput};

/// One request of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount(Mount),
    Unmount(PathBuf),
    /// A disk's file system stopped unwritten before its unmount.
    Discard(PathBuf),
    /// A pool image mounted ahead (`Host::mount_detached`).
    MountAhead(PathBuf),
    /// A mount made ahead put at this path (`Host::attach`).
    Attach(PathBuf),
    Namespaces {
        ids: IdMap,
        user: PathBuf,
        net: Option<PathBuf>,
    },
    Chown(PathBuf, u32, u32),
    Immutable(PathBuf, bool),
    /// A mount namespace made and pinned at this path.
    MountNs(PathBuf),
    /// A sandbox's link: its network namespace and host end.
    Link(PathBuf, String),
    /// A link deleted, by name.
    Unlink(String),
    /// A hostname set in the UTS namespace at this path.
    Hostname(PathBuf, String),
    /// A thread's nice value set (`None`: the caller's).
    Nice(Option<u32>, i32),
    /// A helper: its program's file name and arguments.
    Run(String, Vec<String>),
    Detached(String, Vec<String>),
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    mounted: BTreeSet<PathBuf>,
    running: BTreeSet<String>,
    /// Helpers run with this argument fail, and so do mounts when `fail_mounts`.
    failing_arg: Option<String>,
    fail_mounts: bool,
    /// Whether pool images are mounted ahead, and whether attaching those mounts fails.
    mount_ahead: bool,
    refuse_attach: bool,
}

/// The recording host.
#[derive(Default)]
pub struct RecordingHost {
    state: Mutex<State>,
}

fn strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn ok(stdout: &str) -> RunOutput {
    RunOutput {
        success: true,
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

impl RecordingHost {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// What was asked so far, leaving out `mkfs.ext4` (a disk template is made once, by
    /// whichever create or refill comes first).
    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
            .into_iter()
            .filter(|c| !matches!(c, Call::Run(p, _) if p.starts_with("mkfs")))
            .collect()
    }

    /// Forget the calls so far.
    pub fn clear(&self) {
        self.with(|s| s.calls.clear());
    }

    /// From now on, helpers run with the argument `arg` fail (as a runtime's `list` may).
    pub fn fail_runs_with(&self, arg: &str) {
        self.with(|s| s.failing_arg = Some(arg.into()));
    }

    /// From now on, mounts fail.
    pub fn fail_mounts(&self) {
        self.with(|s| s.fail_mounts = true);
    }

    /// From now on, pool images are mounted ahead (as descriptors of `/dev/null`); attaching
    /// them fails when `refuse_attach`.
    pub fn mount_ahead(&self, refuse_attach: bool) {
        self.with(|s| (s.mount_ahead, s.refuse_attach) = (true, refuse_attach));
    }

    pub fn mounted(&self) -> BTreeSet<PathBuf> {
        self.with(|s| s.mounted.clone())
    }
}

impl Host for RecordingHost {
    fn mount(&self, m: &Mount) -> std::io::Result<()> {
        let target = match m {
            Mount::Overlay { target, .. }
            | Mount::Loop { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Bind { target, .. } => target.clone(),
        };
        self.with(|s| {
            if s.fail_mounts {
                return Err(std::io::Error::other("mount refused (test)"));
            }
            s.calls.push(Call::Mount(m.clone()));
            s.mounted.insert(target);
            Ok(())
        })
    }

    fn make_namespaces(&self, ids: IdMap, user: &Path, net: Option<&Path>) -> std::io::Result<()> {
        self.with(|s| {
            s.calls.push(Call::Namespaces {
                ids,
                user: user.into(),
                net: net.map(Into::into),
            });
            s.mounted.insert(user.into());
        });
        Ok(())
    }

    fn base_mount_ns(&self, _leave_out: &[PathBuf]) -> std::io::Result<()> {
        Ok(())
    }

    fn sealed_copy(&self, _program: &Path) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
        Ok(None)
    }

    fn in_mount_ns(
        &self,
        pin: &Path,
        create: bool,
        f: &mut (dyn FnMut() + Send),
    ) -> std::io::Result<()> {
        self.with(|s| {
            if create && s.mounted.insert(pin.into()) {
                s.calls.push(Call::MountNs(pin.into()));
            }
        });
        f();
        Ok(())
    }

    fn drop_mount_ns(&self, pin: &Path) -> std::io::Result<()> {
        self.unmount(pin)
    }

    fn idmap_support(&self, _dir: &Path) -> Result<(), String> {
        Ok(())
    }

    fn set_immutable(&self, dir: &Path, on: bool) -> std::io::Result<()> {
        self.with(|s| s.calls.push(Call::Immutable(dir.into(), on)));
        Ok(())
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        self.with(|s| s.calls.push(Call::Chown(path.into(), uid, gid)));
        Ok(())
    }

    fn unmount(&self, target: &Path) -> std::io::Result<()> {
        self.with(|s| {
            if s.mounted.remove(target) {
                s.calls.push(Call::Unmount(target.into()));
            }
        });
        Ok(())
    }

    fn discard_fs(&self, target: &Path) -> std::io::Result<()> {
        self.with(|s| {
            if !s.mounted.contains(target) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{} is not a loop device's mount", target.display()),
                ));
            }
            s.calls.push(Call::Discard(target.into()));
            Ok(())
        })
    }

    /// Unless [`RecordingHost::mount_ahead`], disks are not mounted ahead: creates mount
    /// them (`Mount::Loop`).
    fn mount_detached(&self, image: &Path) -> std::io::Result<OwnedFd> {
        self.with(|s| {
            if !s.mount_ahead {
                return Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
            }
            s.calls.push(Call::MountAhead(image.into()));
            Ok(OwnedFd::from(std::fs::File::open("/dev/null")?))
        })
    }

    fn attach(&self, _mnt: OwnedFd, target: &Path) -> std::io::Result<()> {
        self.with(|s| {
            if !s.mount_ahead || s.refuse_attach {
                return Err(std::io::Error::other(format!(
                    "refusing to attach a disk at {}",
                    target.display()
                )));
            }
            s.calls.push(Call::Attach(target.into()));
            s.mounted.insert(target.into());
            Ok(())
        })
    }

    fn is_mounted(&self, target: &Path) -> bool {
        self.with(|s| s.mounted.contains(target))
    }

    fn link_netns(&self, netns: &Path, n: &crate::NetworkSpec) -> std::io::Result<()> {
        self.with(|s| {
            s.calls.push(Call::Link(netns.into(), n.host_if.clone()));
            match &s.failing_arg {
                Some(bad) if *bad == n.host_if => Err(std::io::Error::other("link failed (test)")),
                _ => Ok(()),
            }
        })
    }

    fn delete_link(&self, name: &str) -> std::io::Result<()> {
        self.with(|s| s.calls.push(Call::Unlink(name.into())));
        Ok(())
    }

    fn set_hostname(&self, uts: &Path, name: &str) -> std::io::Result<()> {
        self.with(|s| s.calls.push(Call::Hostname(uts.into(), name.into())));
        Ok(())
    }

    fn nice(&self, _tid: Option<u32>) -> std::io::Result<i32> {
        Ok(0)
    }

    fn set_nice(&self, tid: Option<u32>, nice: i32) -> std::io::Result<()> {
        self.with(|s| s.calls.push(Call::Nice(tid, nice)));
        Ok(())
    }

    fn run_in_netns(
        &self,
        netns: &Path,
        program: &Path,
        args: &[OsString],
    ) -> std::io::Result<RunOutput> {
        let mut net = OsString::from("--net=");
        net.push(netns);
        let all: Vec<OsString> = std::iter::once(net).chain(args.iter().cloned()).collect();
        self.run(program, &all)
    }

    fn run(&self, program: &Path, args: &[OsString]) -> std::io::Result<RunOutput> {
        let args = strings(args);
        let id = args.last().cloned().unwrap_or_default();
        self.with(|s| {
            s.calls.push(Call::Run(name(program), args.clone()));
            if let Some(bad) = &s.failing_arg
                && args.contains(bad)
            {
                return Ok(RunOutput {
                    success: false,
                    stdout: String::new(),
                    stderr: format!("{bad} failed (test)"),
                });
            }
            if args.iter().any(|a| a == "delete") {
                s.running.remove(&id);
            }
            if args.iter().any(|a| a == "list") {
                let listed: Vec<_> = s
                    .running
                    .iter()
                    .map(|id| serde_json::json!({"id": id, "status": "running", "pid": 1}))
                    .collect();
                return Ok(ok(&serde_json::Value::from(listed).to_string()));
            }
            if args.iter().any(|a| a == "state") {
                return Ok(match s.running.contains(&id) {
                    true => ok(r#"{"status":"running"}"#),
                    false => RunOutput {
                        success: false,
                        stdout: String::new(),
                        stderr: format!("container `{id}` does not exist"),
                    },
                });
            }
            Ok(ok(""))
        })
    }

    fn run_detached(
        &self,
        program: &Path,
        args: &[OsString],
        _log: &Path,
        pass: Option<BorrowedFd<'_>>,
    ) -> std::io::Result<bool> {
        if pass.is_none() {
            serve_bundle_socket(args)?;
        }
        let args = strings(args);
        if let Some(fd) = pass {
            // PID 1: answer on the listening socket the runtime would hand it.
            let listener = std::os::unix::net::UnixListener::from(fd.try_clone_to_owned()?);
            let root = std::env::temp_dir();
            std::thread::spawn(move || {
                for conn in listener.incoming().map_while(Result::ok) {
                    crate::fake::serve(conn, &root);
                }
            });
        }
        self.with(|s| {
            s.running.insert(args.last().cloned().unwrap_or_default());
            s.calls.push(Call::Detached(name(program), args));
        });
        Ok(true)
    }

    fn run_detached_in_netns(
        &self,
        netns: &Path,
        program: &Path,
        args: &[OsString],
        log: &Path,
    ) -> std::io::Result<bool> {
        let mut net = OsString::from("--net=");
        net.push(netns);
        let all: Vec<OsString> = std::iter::once(net).chain(args.iter().cloned()).collect();
        self.run_detached(program, &all, log, None)
    }
}

/// runsc's PID 1 (the agent) binds its own socket in the bundle's `sock/`: answer there.
fn serve_bundle_socket(args: &[OsString]) -> std::io::Result<()> {
    let strings = strings(args);
    if let Some(bundle) = strings
        .iter()
        .position(|a| a == "--bundle")
        .and_then(|i| strings.get(i + 1))
    {
        let dir = Path::new(bundle).join("sock");
        std::fs::create_dir_all(&dir)?;
        let listener = std::os::unix::net::UnixListener::bind(dir.join("agent.sock"))?;
        let root = std::env::temp_dir();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                crate::fake::serve(conn, &root);
            }
        });
    }
    Ok(())
}
