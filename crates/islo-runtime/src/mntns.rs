//! A mount namespace per sandbox, for [`crate::host::RealHost`].
//!
//! A new mount namespace starts as a copy of its parent's mount table, and the OCI runtime
//! reads that table whole (`/proc/mounts`) as it starts a sandbox: both cost about 5 µs per
//! mount. Were each sandbox's disk, root file system and namespace pins mounted on the host,
//! every start would pay for every other sandbox. So they are not: each sandbox's mounts live
//! in a namespace of its own, copied from a *base* namespace (islod's as it started, made
//! private so that nothing mounted on the host later reaches it, and without the sandboxes'
//! pins). The host holds one mount per sandbox, the pin that keeps its namespace alive across
//! islod's restarts, and the runtime, started inside the sandbox's namespace, sees the base's
//! mounts and its own only. The base is held by islod while it runs, not pinned.
//!
//! Work inside a namespace runs on a thread of its own that leaves the process's shared file
//! system context (`unshare(CLONE_FS)`) and `setns`es in; helpers it spawns are born there.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountPropagationFlags, UnmountFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

/// The namespace islod itself runs in: its main thread's, which never moves.
const HOST_NS: &str = "/proc/self/ns/mnt";

/// The base namespace, made once per process.
static BASE: OnceLock<OwnedFd> = OnceLock::new();

fn open(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

fn enter(ns: &OwnedFd, what: &str) -> io::Result<()> {
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Mount))
        .map_err(|e| io::Error::other(format!("entering the mount namespace {what}: {e}")))
}

/// Leave the process's shared root, cwd and umask, as `setns` into a mount namespace needs.
fn own_fs_context() -> io::Result<()> {
    // SAFETY: only CLONE_FS is unshared: this thread gets its own root, cwd and umask. The
    // descriptor table stays shared, so descriptors keep meaning the same on every thread.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::FS) }
        .map_err(|e| io::Error::other(format!("unshare(CLONE_FS): {e}")))
}

/// A new mount namespace for this thread (a copy of the one it is in), private throughout.
fn new_private_ns() -> io::Result<()> {
    // SAFETY: CLONE_NEWNS (which implies CLONE_FS) only; the descriptor table stays shared.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }
        .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNS): {e}")))?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| io::Error::other(format!("making the new mount namespace private: {e}")))
}

/// Pin this thread's mount namespace at `pin`: the bind mount is made on the host (islod's
/// namespace), and the thread ends up back in the namespace it pinned.
fn pin_here(pin: &Path) -> io::Result<()> {
    let mine = open(Path::new("/proc/thread-self/ns/mnt"))?;
    enter(&open(Path::new(HOST_NS))?, "of islod")?;
    let from = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&mine));
    crate::idmap::pin(&from, pin)?;
    enter(&mine, "just made")
}

/// Run `f` on a thread of its own, which `prepare` first moves into a namespace.
fn on_thread<T: Send>(
    prepare: impl FnOnce() -> io::Result<()> + Send,
    f: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            own_fs_context()?;
            prepare()?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a mount namespace thread panicked")))
    })
}

/// Make the base namespace (once): a private copy of islod's namespace in which every mount
/// under `leave_out` (the sandboxes' pins, and mounts an islod from before per-sandbox
/// namespaces made on the host) is detached.
pub fn ensure_base(leave_out: &[PathBuf]) -> io::Result<()> {
    if BASE.get().is_some() {
        return Ok(());
    }
    let base = on_thread(
        || {
            new_private_ns()?;
            detach_under(leave_out)
        },
        || open(Path::new("/proc/thread-self/ns/mnt")),
    )??;
    let _ = BASE.set(base);
    Ok(())
}

/// Detach (lazily, in this thread's namespace only) every mount under one of `dirs`.
fn detach_under(dirs: &[PathBuf]) -> io::Result<()> {
    let info = std::fs::read_to_string("/proc/thread-self/mountinfo")?;
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(crate::host::unescape_mountinfo(p)))
        .filter(|p| dirs.iter().any(|d| p.starts_with(d) && p != d))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = rustix::mount::unmount(&p, UnmountFlags::DETACH);
    }
    Ok(())
}

/// Run `f` in the namespace pinned at `pin`. When nothing is pinned there: with `create`, a
/// new namespace is made from the base and pinned first; without, `f` runs in islod's own
/// namespace (a sandbox whose mounts an older islod made on the host).
pub fn run_in<T: Send>(pin: &Path, create: bool, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    if crate::host::is_mount_point(pin) {
        let ns = open(pin)?;
        return on_thread(|| enter(&ns, &pin.display().to_string()), f);
    }
    if !create {
        return Ok(f());
    }
    let base = BASE
        .get()
        .ok_or_else(|| io::Error::other("the base mount namespace of sandboxes is not made"))?;
    on_thread(
        || {
            enter(base, "base")?;
            new_private_ns()?;
            pin_here(pin)
        },
        f,
    )
}

/// Drop the namespace pinned at `pin` (its mounts go when nothing else holds it).
pub fn remove(pin: &Path) -> io::Result<()> {
    if crate::host::is_mount_point(pin) {
        rustix::mount::unmount(pin, UnmountFlags::DETACH)
            .map_err(|e| io::Error::other(format!("unpinning {}: {e}", pin.display())))?;
    }
    match std::fs::remove_file(pin) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::host::is_mount_point;

    fn root() {
        assert!(
            rustix::process::geteuid().is_root(),
            "mount namespace tests need root (CI runs as root)"
        );
        ensure_base(&[]).unwrap();
    }

    #[test]
    fn mounts_made_inside_stay_inside_and_go_with_the_pin() {
        root();
        let tmp = tempfile::tempdir().unwrap();
        let (pin, inner) = (tmp.path().join("ns"), tmp.path().join("inner"));
        std::fs::create_dir(&inner).unwrap();
        let mounted_inside = run_in(&pin, true, || {
            rustix::mount::mount(
                "islo-test",
                &inner,
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                None::<&std::ffi::CStr>,
            )
            .map(|()| is_mount_point(&inner))
        })
        .unwrap()
        .unwrap();
        assert!(mounted_inside);
        assert!(is_mount_point(&pin), "the namespace is pinned on the host");
        assert!(
            !is_mount_point(&inner),
            "the host does not see the mount made inside"
        );
        assert!(
            run_in(&pin, false, || is_mount_point(&inner)).unwrap(),
            "entered again"
        );
        remove(&pin).unwrap();
        assert!(!pin.exists() && !is_mount_point(&inner));
        assert!(
            !run_in(&pin, false, || is_mount_point(&inner)).unwrap(),
            "without a pin, work runs where islod is"
        );
    }

    #[test]
    fn a_namespace_that_cannot_be_pinned_is_an_error_and_leaves_nothing() {
        root();
        let tmp = tempfile::tempdir().unwrap();
        let pin = tmp.path().join("missing-dir/ns");
        let mut ran = false;
        let err = run_in(&pin, true, || ran = true).unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
        assert!(!ran, "nothing runs in a namespace that was not pinned");
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!host.contains(&tmp.path().display().to_string()));
        remove(&pin).unwrap();
    }
}
