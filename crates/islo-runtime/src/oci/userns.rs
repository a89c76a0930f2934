//! A sandbox's user namespace in the OCI driver.
//!
//! `<dir>/userns` pins the namespace (made afresh at each start, with the stored map) and it
//! owns the sandbox's network namespace, which the runtime joins along with it. The writable
//! layer's files are host ids of the map; `<dir>/ids.json` records which map they are owned
//! for, so a sandbox whose map changed (one made before user namespaces had none) is re-owned
//! once, at its next start, before anything runs in it.

use std::path::{Path, PathBuf};

use crate::host::Host;
use crate::{DriverError, IdMap, SandboxSpec};

/// The pinned user namespace, in the sandbox's directory.
pub const USERNS_FILE: &str = "userns";

/// The map the disk's files are owned for.
const OWNED_FILE: &str = "ids.json";

/// Path of the pinned namespace.
pub fn userns_path(dir: &Path) -> PathBuf {
    dir.join(USERNS_FILE)
}

/// Record that the disk's files are owned for `ids` (`None`: host ids as they are).
pub fn record_owner(dir: &Path, ids: Option<IdMap>) -> Result<(), DriverError> {
    let path = dir.join(OWNED_FILE);
    let text =
        serde_json::to_string(&IdMap::of(ids)).map_err(|e| DriverError::Host(e.to_string()))?;
    crate::host::write_atomic(&path, text.as_bytes(), 0o600)
        .map_err(DriverError::io(path.display().to_string()))
}

/// The map the disk's files are owned for: a sandbox made before this record had none.
fn owned_for(dir: &Path) -> IdMap {
    std::fs::read_to_string(dir.join(OWNED_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(IdMap::IDENTITY)
}

/// Re-own the mounted disk's writable layer and run directory for `spec.ids` if they are
/// owned for another map.
pub fn own_disk(dir: &Path, disk: &Path, spec: &SandboxSpec) -> Result<(), DriverError> {
    let (from, to) = (owned_for(dir), IdMap::of(spec.ids));
    if from == to {
        return Ok(());
    }
    let t = std::time::Instant::now();
    let mut changed = 0;
    for sub in ["upper", "run"] {
        let p = disk.join(sub);
        changed += crate::idmap::reown_tree(&p, &from, &to).map_err(DriverError::io(format!(
            "re-owning {} for its user namespace",
            p.display()
        )))?;
    }
    tracing::info!(sandbox = %spec.id, changed, ms = t.elapsed().as_secs_f64() * 1e3,
        "writable layer re-owned for the sandbox's id range");
    record_owner(dir, spec.ids)
}

/// Give a directory the driver just made to the sandbox's root.
pub fn own_new_dir(host: &dyn Host, path: &Path, ids: Option<IdMap>) -> Result<(), DriverError> {
    let Some(root) = ids.and_then(|m| m.to_host(0)) else {
        return Ok(());
    };
    host.chown(path, root, root)
        .map_err(DriverError::io(path.display().to_string()))
}

/// Fresh namespaces for a start: what an earlier run left is dropped first (the runtime can
/// join a network namespace only if the user namespace it joins owns it).
pub fn make_namespaces(
    host: &dyn Host,
    dir: &Path,
    spec: &SandboxSpec,
    ids: IdMap,
) -> Result<(), DriverError> {
    let user = userns_path(dir);
    host.unmount(&user)
        .map_err(DriverError::io(format!("unmounting {}", user.display())))?;
    let net = spec.network.as_ref().map(|n| {
        super::net::detach(host, dir, &spec.id, n);
        super::net::netns_path(&spec.id)
    });
    host.make_namespaces(ids, &user, net.as_deref())
        .map_err(|e| DriverError::Host(format!("making the user namespace of {}: {e}", spec.id)))
}
