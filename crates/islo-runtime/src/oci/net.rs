//! A sandbox's network: its own namespace (`/run/netns/islo-ID`, which the runtime joins), a
//! veth pair whose sandbox end is `eth0` with the default route through the host end, and
//! nothing else. Where packets may go from the host end is the gateway's business (islod
//! installs the nftables rules); this module only builds and removes the plumbing. The link is
//! made and deleted by islod's own rtnetlink messages ([`Host::link_netns`],
//! [`Host::delete_link`], no helper process); `ip` still makes a namespace no user namespace
//! owns, and takes a network down where a start or a failed one finds one left.
//!
//! A removal deletes the veth pair on a thread of its own ([`detach_later`]): the kernel takes
//! the link out of the host's tables at once, but its `link del` then waits for an RCU
//! barrier, ~25 ms here, which a removal need not wait for.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::host::Host;
use crate::{DriverError, NetworkSpec, SandboxId};

const IP: &str = "ip";

/// Name of the sandbox's network namespace.
pub fn netns_name(id: &SandboxId) -> String {
    format!("islo-{}", id.0)
}

/// Path the runtime joins.
pub fn netns_path(id: &SandboxId) -> PathBuf {
    Path::new("/run/netns").join(netns_name(id))
}

/// Run `ip [pre…] -batch FILE` on the host.
fn batch(host: &dyn Host, dir: &Path, file: &str, pre: &[&str], text: &str) -> Result<(), String> {
    let path = dir.join(file);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut args: Vec<OsString> = pre.iter().map(OsString::from).collect();
    args.push("-batch".into());
    args.push(path.clone().into());
    let out = host.run(Path::new(IP), &args).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("running {IP}: {e} (install iproute2)"),
        _ => format!("running {IP}: {e}"),
    })?;
    let _ = std::fs::remove_file(&path);
    if out.success {
        Ok(())
    } else {
        Err(out.stderr.trim().to_string())
    }
}

/// The host ends of the links this process is deleting ([`detach_later`]).
static DELETING: LazyLock<(Mutex<HashSet<String>>, Condvar)> =
    LazyLock::new(|| (Mutex::new(HashSet::new()), Condvar::new()));

/// How long a start waits for an earlier link of the same name to go before trying anyway.
const DELETE_WAIT: Duration = Duration::from_secs(10);

fn host_link(name: &str) -> PathBuf {
    Path::new("/sys/class/net").join(name)
}

/// Wait until a link named `host_if` that this process is deleting has left the host's
/// tables (its name is free then; the deletion's RCU wait may still be under way).
fn await_deletion(host_if: &str) {
    let (lock, cv) = &*DELETING;
    let end = Instant::now() + DELETE_WAIT;
    let mut deleting = lock.lock().unwrap_or_else(PoisonError::into_inner);
    while deleting.contains(host_if) && host_link(host_if).exists() && Instant::now() < end {
        deleting = cv
            .wait_timeout(deleting, Duration::from_millis(1))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Take the network of a sandbox whose processes have ended down, the link on a thread of
/// its own. The namespace is unpinned now, but a descriptor of it is held until the link is
/// deleted: the kernel's own clean-up of a namespace would remove the pair too, and that
/// holds the lock every new namespace needs. Should islod end first, that clean-up is what
/// happens, so nothing is left behind either way.
pub fn detach_later(host: Arc<dyn Host>, dir: &Path, id: &SandboxId, n: &NetworkSpec) {
    await_deletion(&n.host_if);
    let ns = netns_path(id);
    let held = std::fs::File::open(&ns);
    if !host_link(&n.host_if).exists() || held.is_err() {
        return detach(host.as_ref(), dir, id, n);
    }
    if let Err(e) = host.unmount(&ns).and_then(|()| std::fs::remove_file(&ns)) {
        tracing::warn!(sandbox = %id, error = %e, "unpinning the network namespace");
    }
    let name = n.host_if.clone();
    DELETING
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.clone());
    let work = {
        let name = name.clone();
        move || {
            if let Err(e) = host.delete_link(&name) {
                tracing::warn!(link = %name, error = %e, "deleting a link");
            }
            drop(held);
            deleted(&name);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("islo-link-del".into())
        .spawn(work)
    {
        // The descriptor went with the thread: the kernel's clean-up deletes the pair.
        tracing::warn!(link = %name, error = %e, "no thread to delete a link");
        deleted(&name);
    }
}

fn deleted(name: &str) {
    let (lock, cv) = &*DELETING;
    lock.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
    cv.notify_all();
}

/// Build the namespace (unless `made`: one owned by the sandbox's user namespace is already
/// pinned at [`netns_path`]) and link it ([`Host::link_netns`]); on error remove what was made.
pub fn attach(
    host: &dyn Host,
    dir: &Path,
    id: &SandboxId,
    n: &NetworkSpec,
    made: bool,
) -> Result<(), DriverError> {
    let made = if made {
        await_deletion(&n.host_if);
        Ok(())
    } else {
        detach(host, dir, id, n);
        let add = format!("netns add {}\n", netns_name(id));
        batch(host, dir, "net-ns.batch", &[], &add)
    };
    let linked = made.and_then(|()| {
        host.link_netns(&netns_path(id), n)
            .map_err(|e| format!("linking {}: {e}", n.host_if))
    });
    if let Err(detail) = linked {
        detach(host, dir, id, n);
        return Err(DriverError::Host(format!(
            "setting up the network of sandbox {id}: {detail}"
        )));
    }
    Ok(())
}

/// Link a sandbox restored from a checkpoint (its network namespace made empty by the restore,
/// that of its PID 1, `pid`): pin that namespace in place of the one a start would use, then
/// the veth pair and addresses as [`attach`] makes them.
pub fn attach_restored(
    host: &dyn Host,
    dir: &Path,
    id: &SandboxId,
    n: &NetworkSpec,
    pid: u32,
) -> Result<(), DriverError> {
    detach(host, dir, id, n);
    let pin = format!("netns attach {} {pid}\n", netns_name(id));
    let made = batch(host, dir, "net-pin.batch", &[], &pin)
        .and_then(|()| attach(host, dir, id, n, true).map_err(|e| e.to_string()));
    made.map_err(|detail| {
        detach(host, dir, id, n);
        DriverError::Host(format!("linking the restored sandbox {id}: {detail}"))
    })
}

/// Remove the veth pair and the namespace; what is already gone is no error (and when
/// neither is there, as for a new sandbox, no helper runs).
pub fn detach(host: &dyn Host, dir: &Path, id: &SandboxId, n: &NetworkSpec) {
    await_deletion(&n.host_if);
    if !netns_path(id).exists() && !host_link(&n.host_if).exists() {
        return;
    }
    let text = format!("link del {}\nnetns del {}\n", n.host_if, netns_name(id));
    let _ = batch(host, dir, "net-del.batch", &["-force"], &text);
}
