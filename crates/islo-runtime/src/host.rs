//! The narrow seam between sandbox logic and the host's side effects: mounts and helper
//! programs. [`RealHost`] does them; tests of the logic above can record them instead.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::mount::{MountFlags, UnmountFlags};
use rustix::thread::LinkNameSpaceType;

/// A mount the OCI driver needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// overlayfs: `lower` lowest first. With `idmap` (a pinned user namespace), the lower
    /// layers are seen through idmapped mounts of that namespace.
    Overlay {
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
        idmap: Option<PathBuf>,
    },
    /// A file system image on a loop device.
    Loop { image: PathBuf, target: PathBuf },
    /// An empty tmpfs of `size_kib`, its root of mode `mode`.
    Tmpfs {
        target: PathBuf,
        mode: u32,
        size_kib: u64,
    },
    /// `source` (a file or a directory) seen at `target` too, with what is mounted under it.
    Bind { source: PathBuf, target: PathBuf },
}

/// Output of a helper program.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The directories and regular files under `from`, copied into `to` (made if missing; what
/// is already there is overwritten). Symlinks and special files are left out.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Write `bytes` to `path` (mode `mode`) as one step: into a temporary name beside it, then
/// renamed over it, so a crash of this process leaves the old file or the new one, never a
/// part. For files made again at each start (a power loss may lose the newest content).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_renamed(path, bytes, mode, false)
}

/// [`write_atomic`], flushed to the disk before the rename, so that even a power loss leaves
/// the old file or the new one (keys and certificates).
pub fn write_durable(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_renamed(path, bytes, mode, true)
}

fn write_renamed(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            if sync { f.sync_all() } else { Ok(()) }
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Host side effects.
pub trait Host: Send + Sync {
    fn mount(&self, m: &Mount) -> std::io::Result<()>;
    /// Make a user namespace mapping `ids`, pinned (bind-mounted) at `user`, and with `net`
    /// a network namespace owned by it, pinned at `net`. Unmount `user` to drop it.
    fn make_namespaces(
        &self,
        ids: crate::IdMap,
        user: &Path,
        net: Option<&Path>,
    ) -> std::io::Result<()>;
    /// Whether layers under `dir` can be mounted idmapped; `Err` says what is missing.
    fn idmap_support(&self, dir: &Path) -> Result<(), String>;
    /// Give `path` (not followed) to host ids `uid`, `gid`.
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> std::io::Result<()>;
    /// Set or clear a directory's immutable flag (`FS_IMMUTABLE_FL`): while set, no entry in
    /// it can be made, removed or renamed, by anyone without `CAP_LINUX_IMMUTABLE`.
    fn set_immutable(&self, dir: &Path, on: bool) -> std::io::Result<()>;
    /// Make the base mount namespace sandboxes' are copied from (see [`crate::mntns`]),
    /// leaving out any mount under `leave_out`; once per process.
    fn base_mount_ns(&self, leave_out: &[PathBuf]) -> std::io::Result<()>;
    /// Run `f` in the sandbox mount namespace pinned at `pin`; with `create`, made from the
    /// base if not pinned yet; without, and not pinned, `f` runs where islod is. Mounts made
    /// and helpers run by `f` are in that namespace.
    fn in_mount_ns(
        &self,
        pin: &Path,
        create: bool,
        f: &mut (dyn FnMut() + Send),
    ) -> std::io::Result<()>;
    /// Unpin (and so drop) the mount namespace pinned at `pin`.
    fn drop_mount_ns(&self, pin: &Path) -> std::io::Result<()>;
    /// Unmount `target`; not mounted is not an error.
    fn unmount(&self, target: &Path) -> std::io::Result<()>;
    /// Stop the disk file system mounted at `target` without writing what it holds (its
    /// image is about to be deleted; see [`crate::loopdev::shut_down`]), so that unmounting
    /// it writes nothing. Refuses anything but a loop device's mount.
    fn discard_fs(&self, target: &Path) -> std::io::Result<()>;
    /// Mount the disk image `image` attached nowhere yet (see [`crate::loopdev::mount_detached`]).
    fn mount_detached(&self, image: &Path) -> std::io::Result<OwnedFd>;
    /// Put a mount from [`Host::mount_detached`] at `target`.
    fn attach(&self, mnt: OwnedFd, target: &Path) -> std::io::Result<()>;
    fn is_mounted(&self, target: &Path) -> bool;
    /// A copy of `program` in memory, sealed against any change, to run instead of the file
    /// (as `/proc/self/fd/N`); `None` where the host makes none. An OCI runtime that finds
    /// itself sealed skips copying itself before every start (its defence against a sandbox
    /// overwriting the runtime's binary, CVE-2019-5736), and a sealed copy is that defence.
    fn sealed_copy(&self, program: &Path) -> std::io::Result<Option<OwnedFd>>;
    /// Run a helper program to completion; its stdin is empty.
    fn run(&self, program: &Path, args: &[OsString]) -> std::io::Result<RunOutput>;
    /// Link the network namespace pinned at `netns` to this one (see [`crate::rtnl`]): the
    /// veth pair `n.host_if` here and `eth0` there, addressed and up, the namespace's loopback
    /// up and its default route through the host end.
    fn link_netns(&self, netns: &Path, n: &crate::NetworkSpec) -> std::io::Result<()>;
    /// Delete the host's link `name` (and so its veth peer); blocks until the kernel is done.
    fn delete_link(&self, name: &str) -> std::io::Result<()>;
    /// Set the hostname of the UTS namespace at `uts` (a `/proc/PID/ns/uts`), from a thread
    /// that enters it (islod's other threads keep the host's).
    fn set_hostname(&self, uts: &Path, name: &str) -> std::io::Result<()>;
    /// The nice value of thread `tid` (`None`: the calling thread).
    fn nice(&self, tid: Option<u32>) -> std::io::Result<i32>;
    /// Set the nice value of thread `tid` (`None`: the calling thread); what it starts from
    /// then inherits it.
    fn set_nice(&self, tid: Option<u32>, nice: i32) -> std::io::Result<()>;
    /// [`Host::run`] in the network namespace pinned at `netns` (the helper only: islod's
    /// threads stay where they are).
    fn run_in_netns(
        &self,
        netns: &Path,
        program: &Path,
        args: &[OsString],
    ) -> std::io::Result<RunOutput>;
    /// Run a helper whose children may outlive it (an OCI runtime's `run -d`): their stdio
    /// goes to `log`, so nothing waits on a pipe they hold. `pass`, when given, is the
    /// helper's descriptor 3 (for `--preserve-fds 1`).
    fn run_detached(
        &self,
        program: &Path,
        args: &[OsString],
        log: &Path,
        pass: Option<BorrowedFd<'_>>,
    ) -> std::io::Result<bool>;
    /// [`Host::run_detached`] in the network namespace pinned at `netns`, so what the helper
    /// leaves running (runsc's sandbox) makes its network calls there.
    fn run_detached_in_netns(
        &self,
        netns: &Path,
        program: &Path,
        args: &[OsString],
        log: &Path,
    ) -> std::io::Result<bool>;
}

/// The real host.
pub struct RealHost;

impl Host for RealHost {
    fn mount(&self, m: &Mount) -> std::io::Result<()> {
        match m {
            Mount::Overlay {
                lower,
                upper,
                work,
                target,
                idmap,
            } => {
                // Each directory is named through a descriptor of this process: overlayfs
                // resolves the names when mounting and keeps them only to show in mountinfo,
                // where the sandbox reads them. So it sees `/proc/self/fd/N`, not the host's
                // state directory or its own id (and many layers fit in one page of options).
                let open = |p: &PathBuf| {
                    rustix::fs::open(
                        p,
                        rustix::fs::OFlags::PATH
                            | rustix::fs::OFlags::DIRECTORY
                            | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", p.display())))
                };
                let name = |fd: &std::os::fd::OwnedFd| {
                    format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd))
                };
                // overlayfs lists the uppermost lower dir first. Idmapped layers are
                // detached mounts, named the same way.
                let userns = idmap
                    .as_deref()
                    .map(crate::idmap::open_userns)
                    .transpose()?;
                let lower_fds = lower
                    .iter()
                    .rev()
                    .map(|p| match &userns {
                        Some(ns) => crate::idmap::idmapped_tree(p, ns),
                        None => open(p),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let (upper_fd, work_fd) = (open(upper)?, open(work)?);
                let lowers: Vec<String> = lower_fds.iter().map(name).collect();
                let data = format!(
                    "lowerdir={},upperdir={},workdir={},index=off,xino=off",
                    lowers.join(":"),
                    name(&upper_fd),
                    name(&work_fd)
                );
                let data = std::ffi::CString::new(data).map_err(std::io::Error::other)?;
                rustix::mount::mount(
                    "overlay",
                    target,
                    "overlay",
                    MountFlags::NOATIME,
                    Some(data.as_c_str()),
                )
                .map_err(std::io::Error::from)
            }
            Mount::Loop { image, target } => crate::loopdev::mount_ext4(image, target),
            Mount::Tmpfs {
                target,
                mode,
                size_kib,
            } => {
                let data = std::ffi::CString::new(format!("mode={mode:o},size={size_kib}k"))
                    .map_err(std::io::Error::other)?;
                rustix::mount::mount(
                    "tmpfs",
                    target,
                    "tmpfs",
                    MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                    Some(data.as_c_str()),
                )
                .map_err(std::io::Error::from)
            }
            Mount::Bind { source, target } => {
                rustix::mount::mount_bind_recursive(source, target).map_err(std::io::Error::from)
            }
        }
    }

    fn make_namespaces(
        &self,
        ids: crate::IdMap,
        user: &Path,
        net: Option<&Path>,
    ) -> std::io::Result<()> {
        if let Some(dir) = net.and_then(Path::parent) {
            std::fs::create_dir_all(dir)?;
        }
        crate::idmap::make_namespaces(ids, user, net)
    }

    fn set_immutable(&self, dir: &Path, on: bool) -> std::io::Result<()> {
        use rustix::fs::{IFlags, Mode, OFlags};
        let fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut flags = rustix::fs::ioctl_getflags(&fd)?;
        flags.set(IFlags::IMMUTABLE, on);
        Ok(rustix::fs::ioctl_setflags(&fd, flags)?)
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    }

    fn idmap_support(&self, dir: &Path) -> Result<(), String> {
        crate::idmap::probe(dir)
    }

    fn discard_fs(&self, target: &Path) -> std::io::Result<()> {
        crate::loopdev::shut_down(target)
    }

    fn mount_detached(&self, image: &Path) -> std::io::Result<OwnedFd> {
        crate::loopdev::mount_detached(image)
    }

    fn attach(&self, mnt: OwnedFd, target: &Path) -> std::io::Result<()> {
        crate::loopdev::attach(mnt, target)
    }

    fn unmount(&self, target: &Path) -> std::io::Result<()> {
        if !self.is_mounted(target) {
            return Ok(());
        }
        match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::BUSY) => {
                rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(std::io::Error::from)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn is_mounted(&self, target: &Path) -> bool {
        is_mount_point(target)
    }

    fn base_mount_ns(&self, leave_out: &[PathBuf]) -> std::io::Result<()> {
        crate::mntns::ensure_base(leave_out)
    }

    fn sealed_copy(&self, program: &Path) -> std::io::Result<Option<OwnedFd>> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let name = program.file_name().unwrap_or(program.as_os_str());
        let fd = rustix::fs::memfd_create(
            name.as_encoded_bytes(),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut copy = std::fs::File::from(fd);
        std::io::copy(&mut std::fs::File::open(program)?, &mut copy)?;
        rustix::fs::fcntl_add_seals(
            &copy,
            SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
        )?;
        Ok(Some(copy.into()))
    }

    fn in_mount_ns(
        &self,
        pin: &Path,
        create: bool,
        f: &mut (dyn FnMut() + Send),
    ) -> std::io::Result<()> {
        crate::mntns::run_in(pin, create, f)
    }

    fn drop_mount_ns(&self, pin: &Path) -> std::io::Result<()> {
        crate::mntns::remove(pin)
    }

    fn run(&self, program: &Path, args: &[OsString]) -> std::io::Result<RunOutput> {
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(RunOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn link_netns(&self, netns: &Path, n: &crate::NetworkSpec) -> std::io::Result<()> {
        crate::rtnl::link_host(n, &std::fs::File::open(netns)?)?;
        in_netns(netns, || crate::rtnl::link_sandbox(n))
    }

    fn delete_link(&self, name: &str) -> std::io::Result<()> {
        crate::rtnl::delete(name)
    }

    fn set_hostname(&self, uts: &Path, name: &str) -> std::io::Result<()> {
        in_namespace(uts, LinkNameSpaceType::HostNameAndNISDomainName, || {
            Ok(rustix::system::sethostname(name.as_bytes())?)
        })
    }

    fn nice(&self, tid: Option<u32>) -> std::io::Result<i32> {
        Ok(rustix::process::getpriority_process(pid_of(tid)?)?)
    }

    fn set_nice(&self, tid: Option<u32>, nice: i32) -> std::io::Result<()> {
        Ok(rustix::process::setpriority_process(pid_of(tid)?, nice)?)
    }

    fn run_in_netns(
        &self,
        netns: &Path,
        program: &Path,
        args: &[OsString],
    ) -> std::io::Result<RunOutput> {
        in_netns(netns, || self.run(program, args))
    }

    fn run_detached(
        &self,
        program: &Path,
        args: &[OsString],
        log: &Path,
        pass: Option<BorrowedFd<'_>>,
    ) -> std::io::Result<bool> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        crate::spawn::run_with_fd3(program, args, &file, pass)
    }

    fn run_detached_in_netns(
        &self,
        netns: &Path,
        program: &Path,
        args: &[OsString],
        log: &Path,
    ) -> std::io::Result<bool> {
        in_netns(netns, || self.run_detached(program, args, log, None))
    }
}

/// Run `f` on a thread of its own that entered the network namespace pinned at `netns`, so
/// the helper it starts is born there (a child is born in its parent thread's namespaces): no
/// `nsenter` to execute first, and islod's other threads stay where they are.
fn in_netns<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> std::io::Result<T> {
    in_namespace(netns, LinkNameSpaceType::Network, f)
}

/// `tid` as the kernel's priority calls take it (`None`: the caller).
fn pid_of(tid: Option<u32>) -> std::io::Result<Option<rustix::process::Pid>> {
    match tid {
        None => Ok(None),
        Some(t) => i32::try_from(t)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .map(Some)
            .ok_or_else(|| std::io::Error::other(format!("no such thread id {t}"))),
    }
}

/// Run `f` on a thread of its own that entered the namespace of type `kind` at `path`.
fn in_namespace<T: Send>(
    path: &Path,
    kind: LinkNameSpaceType,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> std::io::Result<T> {
    let ns = std::fs::File::open(path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_link_name_space(ns.as_fd(), Some(kind))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the helper's thread panicked")))
    })
}

/// Whether `target` is a mount point (in the calling thread's mount namespace), with one
/// `statx` (`STATX_ATTR_MOUNT_ROOT`): reading the mount table instead costs about 5 µs per
/// mount. Kernels before 5.8 do not answer it; there the table is read.
pub(crate) fn is_mount_point(target: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    match rustix::fs::statx(
        rustix::fs::CWD,
        target,
        AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::empty(),
    ) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        Ok(_) | Err(rustix::io::Errno::NOSYS) => in_mount_table(target),
        Err(_) => false,
    }
}

/// Whether `target` is a mount point in the calling thread's mount table.
fn in_mount_table(target: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/thread-self/mountinfo") else {
        return false;
    };
    let want = target.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == want)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
pub(crate) fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::Host;

    #[test]
    fn a_sealed_copy_runs_and_cannot_be_changed() {
        let fd = super::RealHost
            .sealed_copy(std::path::Path::new("/bin/true"))
            .unwrap()
            .unwrap();
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
        use rustix::fs::SealFlags;
        let all = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
        assert!(seals.contains(all), "{seals:?}");
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        // Close-on-exec and still runnable: exec opens it by name before closing descriptors.
        let st = std::process::Command::new(&path).status().unwrap();
        assert!(st.success());
        let write = std::fs::OpenOptions::new().write(true).open(&path);
        assert!(
            write.is_err() || std::io::Write::write_all(&mut write.unwrap(), b"x").is_err(),
            "a sealed copy took a write"
        );
        let shrink = rustix::fs::ftruncate(&fd, 0);
        assert!(shrink.is_err());
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(super::unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(super::unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn statx_and_the_mount_table_agree_on_mount_points() {
        let plain = std::env::temp_dir().join(format!("islo-mnt-{}", std::process::id()));
        std::fs::create_dir_all(&plain).unwrap();
        for (path, mounted) in [
            ("/", true),
            ("/proc", true),
            (plain.to_str().unwrap(), false),
        ] {
            let p = std::path::Path::new(path);
            assert_eq!(super::is_mount_point(p), mounted, "{path}");
            assert_eq!(super::in_mount_table(p), mounted, "{path}");
        }
        std::fs::remove_dir(&plain).unwrap();
    }
}
