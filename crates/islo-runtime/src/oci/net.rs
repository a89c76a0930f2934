//! A sandbox's network: its own namespace (`/run/netns/islo-ID`, which the runtime joins), a
//! veth pair whose sandbox end is `eth0` with the default route through the host end, and
//! nothing else. Where packets may go from the host end is the gateway's business (islod
//! installs the nftables rules); this module only builds and removes the plumbing, with two
//! `ip -batch` runs so a start costs two helper processes. The one inside the namespace is
//! started from a thread that entered it ([`Host::run_in_netns`]): not `ip -n`, which also
//! copies the mount table into a new mount namespace, nor `nsenter`, one more process.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

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

/// The host-side commands (for `ip -batch`); `add_ns`: make the namespace too.
fn host_batch(id: &SandboxId, n: &NetworkSpec, add_ns: bool) -> String {
    let ns = netns_name(id);
    let add = if add_ns {
        format!("netns add {ns}\n")
    } else {
        String::new()
    };
    format!(
        "{add}\
         link add {hif} type veth peer name eth0 netns {ns}\n\
         addr add {h}/{p} dev {hif}\n\
         link set {hif} up\n",
        hif = n.host_if,
        h = n.host_addr,
        p = n.prefix_len,
    )
}

/// The commands run inside the namespace.
fn sandbox_batch(n: &NetworkSpec) -> String {
    format!(
        "link set lo up\n\
         addr add {s}/{p} dev eth0\n\
         link set eth0 up\n\
         route add default via {h} dev eth0\n",
        s = n.sandbox_addr,
        h = n.host_addr,
        p = n.prefix_len,
    )
}

/// Run `ip [pre…] -batch FILE`, inside the network namespace `netns` if given.
fn batch(
    host: &dyn Host,
    dir: &Path,
    file: &str,
    (netns, pre): (Option<&Path>, &[&str]),
    text: &str,
) -> Result<(), String> {
    let path = dir.join(file);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut args: Vec<OsString> = pre.iter().map(OsString::from).collect();
    args.push("-batch".into());
    args.push(path.clone().into());
    let program = Path::new(IP);
    let out = match netns {
        Some(ns) => host.run_in_netns(ns, program, &args),
        None => host.run(program, &args),
    }
    .map_err(|e| match (e.kind(), netns) {
        (std::io::ErrorKind::NotFound, Some(ns)) if !ns.exists() => {
            format!("the network namespace {} is gone", ns.display())
        }
        (std::io::ErrorKind::NotFound, _) => format!("running {IP}: {e} (install iproute2)"),
        _ => format!("running {IP}: {e}"),
    })?;
    let _ = std::fs::remove_file(&path);
    if out.success {
        Ok(())
    } else {
        Err(out.stderr.trim().to_string())
    }
}

/// Build the namespace (unless `made`: one owned by the sandbox's user namespace is already
/// pinned at [`netns_path`]) and the veth pair; on error remove what was made.
pub fn attach(
    host: &dyn Host,
    dir: &Path,
    id: &SandboxId,
    n: &NetworkSpec,
    made: bool,
) -> Result<(), DriverError> {
    if !made {
        detach(host, dir, id, n);
    }
    let text = host_batch(id, n, !made);
    let made = batch(host, dir, "net-host.batch", (None, &[]), &text).and_then(|()| {
        let ns = netns_path(id);
        batch(
            host,
            dir,
            "net-sandbox.batch",
            (Some(&ns), &[]),
            &sandbox_batch(n),
        )
    });
    if let Err(detail) = made {
        detach(host, dir, id, n);
        return Err(DriverError::Host(format!(
            "setting up the network of sandbox {id}: {detail}"
        )));
    }
    // No IPv6 on the host end: the sandbox's link-local address must not reach host services.
    let v6 = Path::new("/proc/sys/net/ipv6/conf")
        .join(&n.host_if)
        .join("disable_ipv6");
    if v6.exists() {
        std::fs::write(&v6, "1").map_err(DriverError::io(v6.display().to_string()))?;
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
    let made = batch(host, dir, "net-pin.batch", (None, &[]), &pin)
        .and_then(|()| attach(host, dir, id, n, true).map_err(|e| e.to_string()));
    made.map_err(|detail| {
        detach(host, dir, id, n);
        DriverError::Host(format!("linking the restored sandbox {id}: {detail}"))
    })
}

/// Remove the veth pair and the namespace; what is already gone is no error (and when
/// neither is there, as for a new sandbox, no helper runs).
pub fn detach(host: &dyn Host, dir: &Path, id: &SandboxId, n: &NetworkSpec) {
    let link = Path::new("/sys/class/net").join(&n.host_if);
    if !netns_path(id).exists() && !link.exists() {
        return;
    }
    let text = format!("link del {}\nnetns del {}\n", n.host_if, netns_name(id));
    let _ = batch(host, dir, "net-del.batch", (None, &["-force"]), &text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn batches_name_the_namespace_and_addresses() {
        let n = NetworkSpec {
            host_if: "isab12s3".into(),
            host_addr: Ipv4Addr::new(10, 1, 0, 13),
            sandbox_addr: Ipv4Addr::new(10, 1, 0, 14),
            prefix_len: 30,
        };
        let id = SandboxId("x".into());
        let h = host_batch(&id, &n, true);
        assert!(h.contains("netns add islo-x\n"));
        assert!(!host_batch(&id, &n, false).contains("netns add"));
        assert!(h.contains("link add isab12s3 type veth peer name eth0 netns islo-x\n"));
        assert!(h.contains("addr add 10.1.0.13/30 dev isab12s3\n"));
        let s = sandbox_batch(&n);
        assert!(s.contains("route add default via 10.1.0.13 dev eth0"));
        assert!(s.contains("link set lo up"));
    }
}
