//! User namespaces made from the host, for [`crate::host::RealHost`].
//!
//! A sandbox's user namespace (and the network namespace it owns, so the sandbox can mount its
//! own `sysfs`) is made by a short-lived child of islod, which shares islod's memory
//! (`clone(CLONE_VM)`: a fork would copy islod's page tables and leave its pages
//! copy-on-write, a cost that grows with islod), and pinned by bind mounts of its
//! `/proc/PID/ns/*` files, which the runtime then joins. Image layers are seen through
//! *detached* idmapped mounts (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_IDMAP)`)
//! handed to overlayfs as `/proc/self/fd/N`: one copy per layer on disk, no mount point per
//! sandbox per layer, nothing to clean up once the overlay is mounted.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::OpenTreeFlags;

use crate::IdMap;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// A child of this process in a new user namespace, waiting for the go-ahead to end.
struct Holder {
    pid: libc::pid_t,
    /// Written by the child after each step.
    ready: OwnedFd,
    /// Closed by the parent to let the child exit.
    go: Option<OwnedFd>,
    /// The child's stack and arguments, in this process's memory, which it shares: kept
    /// until the child is reaped (`Drop` runs before the fields are dropped).
    _child: Box<(ChildArgs, [u8; CHILD_STACK])>,
}

/// Room for `child`'s few frames.
const CHILD_STACK: usize = 64 * 1024;

/// The descriptors `child` works with (numbers in its own copy of the descriptor table).
struct ChildArgs {
    ready: i32,
    go: i32,
    go_w: i32,
    net: bool,
}

/// What the child does: enter a new user namespace, report, wait for the map, enter a new
/// network namespace if asked, report, wait for the end. It shares this process's memory
/// (and so its threads' locks and thread-local `errno`), so it makes raw system calls only
/// (rustix's, which never touch `errno`), allocates nothing, and ends with `_exit`.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    use rustix::fd::BorrowedFd;
    use rustix::thread::UnshareFlags;
    // SAFETY: `arg` is the `ChildArgs` in the parent's `Holder`, which outlives this child.
    let a = unsafe { &*arg.cast::<ChildArgs>() };
    // SAFETY: the descriptors are the child's own copies (no `CLONE_FILES`), open until it
    // ends; `go_w` is closed once and not used after; unsharing the user and network
    // namespaces of this single-threaded child touches no other thread.
    unsafe {
        rustix::io::close(a.go_w);
        let (ready, go) = (
            BorrowedFd::borrow_raw(a.ready),
            BorrowedFd::borrow_raw(a.go),
        );
        let mut b = [0u8; 1];
        if rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER).is_err() {
            libc::_exit(1);
        }
        if rustix::io::write(ready, &b) != Ok(1) {
            libc::_exit(2);
        }
        if rustix::io::read(go, &mut b) != Ok(1) {
            libc::_exit(0);
        }
        if a.net && rustix::thread::unshare_unsafe(UnshareFlags::NEWNET).is_err() {
            libc::_exit(3);
        }
        if rustix::io::write(ready, &b) != Ok(1) {
            libc::_exit(4);
        }
        let _ = rustix::io::read(go, &mut b);
        libc::_exit(0)
    }
}

impl Holder {
    /// Start the child and give its user namespace the map `ids` (ids and groups alike).
    fn spawn(ids: IdMap, net: bool) -> io::Result<Self> {
        let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let args = ChildArgs {
            ready: ready_w.as_raw_fd(),
            go: go_r.as_raw_fd(),
            go_w: go_w.as_raw_fd(),
            net,
        };
        let mut mem = Box::new((args, [0u8; CHILD_STACK]));
        // The stack grows down from its end, 16-byte aligned as the ABI wants.
        let top = (mem.1.as_mut_ptr_range().end as usize) & !15;
        let arg = (&raw mut mem.0).cast::<libc::c_void>();
        // SAFETY: the child runs only `child` on its own stack inside `mem`, which the
        // `Holder` keeps until the child is reaped; it makes raw system calls only and
        // `_exit`s. The parent keeps running normally.
        let pid = unsafe {
            libc::clone(
                child,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::SIGCHLD,
                arg,
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        drop((ready_w, go_r));
        let mut h = Holder {
            pid,
            ready: ready_r,
            go: Some(go_w),
            _child: mem,
        };
        h.wait_step("a user namespace")?;
        let map = format!("0 {} {}\n", ids.base, ids.size);
        for file in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, &map)
                .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        }
        h.step("a network namespace")?;
        Ok(h)
    }

    /// Read the child's report of its last step.
    fn wait_step(&mut self, what: &str) -> io::Result<()> {
        let mut b = [0u8; 1];
        match rustix::io::read(&self.ready, &mut b) {
            Ok(1) => Ok(()),
            _ => Err(io::Error::other(format!(
                "the helper process failed entering {what} (see /proc/sys/user/max_user_namespaces \
                 and /proc/sys/user/max_net_namespaces)"
            ))),
        }
    }

    /// Let the child take its next step and wait for it.
    fn step(&mut self, what: &str) -> io::Result<()> {
        if let Some(go) = &self.go {
            rustix::io::write(go, b"g")?;
        }
        self.wait_step(what)
    }

    fn ns_path(&self, ns: &str) -> String {
        format!("/proc/{}/ns/{ns}", self.pid)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.go = None;
        // SAFETY: waiting for (and, if it lingers, killing) our own child; a pid we forked
        // and have not reaped yet, so it names no other process.
        unsafe {
            let mut status = 0;
            if libc::waitpid(self.pid, &raw mut status, libc::WNOHANG) == 0 {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, &raw mut status, 0);
            }
        }
    }
}

/// Bind the namespace file `from` at `to` (made as an empty file first).
pub(crate) fn pin(from: &str, to: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(to)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", to.display())))?;
    rustix::mount::mount_bind(from, to)
        .map_err(|e| io::Error::other(format!("pinning {from} at {}: {e}", to.display())))
}

/// Make a user namespace mapping `ids`, pinned at `user`, and with `net` a network namespace
/// owned by it, pinned at `net`. On error nothing is left mounted.
pub fn make_namespaces(ids: IdMap, user: &Path, net: Option<&Path>) -> io::Result<()> {
    let holder = Holder::spawn(ids, net.is_some())?;
    pin(&holder.ns_path("user"), user)?;
    if let Some(net) = net
        && let Err(e) = pin(&holder.ns_path("net"), net)
    {
        let _ = rustix::mount::unmount(user, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_file(net);
        return Err(e);
    }
    drop(holder);
    Ok(())
}

/// A detached, read-only copy of the mount of `dir` that shows its files owned through the
/// user namespace `userns` (a file owned by `n` shows as the namespace's `n`).
pub fn idmapped_tree(dir: &Path, userns: &OwnedFd) -> io::Result<OwnedFd> {
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| io::Error::other(format!("open_tree {}: {e}", dir.display())))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: `mount_setattr` reads `size_of::<MountAttr>()` bytes from `&attr`, a live
    // `repr(C)` value laid out as the kernel's `struct mount_attr`; the path is a static
    // empty C string and `tree` an open descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("an idmapped mount of {}: {e}", dir.display()),
        ));
    }
    Ok(tree)
}

/// Open a pinned user namespace.
pub fn open_userns(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

/// Whether a sandbox's layers under `dir` can be seen through idmapped mounts: a user
/// namespace is made and `dir` mounted through it, then both are dropped.
pub fn probe(dir: &Path) -> Result<(), String> {
    let holder = Holder::spawn(
        IdMap {
            base: 0,
            size: IdMap::SIZE,
        },
        false,
    )
    .map_err(|e| format!("cannot make a user namespace: {e}"))?;
    let ns = open_userns(Path::new(&holder.ns_path("user"))).map_err(|e| e.to_string())?;
    idmapped_tree(dir, &ns).map(drop).map_err(|e| {
        format!(
            "this kernel or file system cannot make idmapped mounts ({e}); they need Linux 5.12+ \
             and a file system that supports them (ext4, xfs, btrfs, tmpfs; not overlayfs)"
        )
    })
}

/// Re-own every entry under `root` (not following symlinks) from the map `from` to `to`:
/// an entry owned by host id `from.base + n` is given `to.base + n`. Set-id bits, which a
/// change of owner clears, are put back. The tree must not change meanwhile (a stopped
/// sandbox's disk).
pub fn reown_tree(root: &Path, from: &IdMap, to: &IdMap) -> io::Result<u64> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut stack = vec![root.to_path_buf()];
    let mut count = 0u64;
    while let Some(path) = stack.pop() {
        let m = std::fs::symlink_metadata(&path)?;
        let (uid, gid) = (from.carry(m.uid(), to), from.carry(m.gid(), to));
        if (uid, gid) != (m.uid(), m.gid()) {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
            count += 1;
            if m.file_type().is_file() && m.mode() & 0o6000 != 0 {
                std::fs::set_permissions(
                    &path,
                    std::fs::Permissions::from_mode(m.mode() & 0o7777),
                )?;
            }
        }
        if m.file_type().is_dir() {
            for e in std::fs::read_dir(&path)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn a_tree_moves_from_one_map_to_another() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("upper");
        std::fs::create_dir_all(root.join("home/islo")).unwrap();
        std::fs::write(root.join("home/islo/f"), "x").unwrap();
        std::fs::write(root.join("suid"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        if !rustix::process::geteuid().is_root() {
            panic!("this test changes owners: run it as root (CI does)");
        }
        std::os::unix::fs::chown(root.join("home/islo"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::chown(root.join("home/islo/f"), Some(1000), Some(100)).unwrap();
        std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        let to = IdMap {
            base: 1 << 30,
            size: IdMap::SIZE,
        };
        let n = reown_tree(&root, &IdMap::IDENTITY, &to).unwrap();
        assert_eq!(n, 6, "every entry changed owner");
        let m = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!(
            (m("home/islo/f").uid(), m("home/islo/f").gid()),
            (to.base + 1000, to.base + 100)
        );
        assert_eq!(m("link").uid(), to.base, "the link itself, not its target");
        assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), 0);
        assert_eq!(m("suid").mode() & 0o7777, 0o4755, "set-id bits survive");
        assert_eq!(
            reown_tree(&root, &IdMap::IDENTITY, &to).unwrap(),
            0,
            "done twice is a no-op"
        );
        let back = reown_tree(&root, &to, &IdMap::IDENTITY).unwrap();
        assert_eq!((back, m("home/islo").uid()), (6, 1000));
    }

    #[test]
    fn maps_translate_both_ways() {
        let m = IdMap {
            base: 1 << 30,
            size: IdMap::SIZE,
        };
        assert_eq!(m.to_host(0), Some(1 << 30));
        assert_eq!(m.to_host(1000), Some((1 << 30) + 1000));
        assert_eq!(m.to_host(65536), None);
        assert_eq!(m.to_inside((1 << 30) + 1000), 1000);
        assert_eq!(
            m.to_inside(0),
            crate::OVERFLOW_ID,
            "host root is nobody inside"
        );
        assert_eq!(IdMap::IDENTITY.to_inside(1234), 1234);
        assert_eq!(IdMap::IDENTITY.to_host(1234), Some(1234));
    }
}
