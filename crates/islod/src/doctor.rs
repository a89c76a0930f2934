//! What `islo doctor` asks of islod's host: cgroup controllers, nftables, free disk, and
//! whether registry mirrors answer. Host probes only; `App::doctor` adds what islod itself
//! knows (runtime, user namespaces, gateway).

use std::path::Path;
use std::time::Duration;

use islo_api::DoctorCheck;

fn check(name: &str, ok: bool, detail: String, fix: &str) -> DoctorCheck {
    DoctorCheck {
        name: name.into(),
        ok,
        detail,
        fix: (!ok).then(|| fix.to_string()),
    }
}

/// cgroup v2 with the controllers sandboxes are limited by, or a v1 (hybrid) host with a
/// hierarchy for each.
pub fn cgroups(root: &Path) -> DoctorCheck {
    let want = ["cpu", "memory", "pids"];
    let (kind, missing): (&str, Vec<&str>) =
        match std::fs::read_to_string(root.join("cgroup.controllers")) {
            Ok(have) => (
                "cgroup v2",
                want.iter()
                    .copied()
                    .filter(|w| !have.split_whitespace().any(|h| h == *w))
                    .collect(),
            ),
            Err(_) => (
                "cgroup v1",
                want.iter()
                    .copied()
                    .filter(|w| !root.join(w).join("cgroup.procs").exists())
                    .collect(),
            ),
        };
    check(
        "cgroups",
        missing.is_empty(),
        match missing.as_slice() {
            [] => format!("{kind} with {}", want.join(", ")),
            m => format!("{kind} lacks the {} controller(s)", m.join(", ")),
        },
        "mount cgroup v2 (or v1 hierarchies) with the cpu, memory and pids controllers enabled",
    )
}

/// The first line `program --version` prints.
pub fn version(program: &str) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

pub fn nftables() -> DoctorCheck {
    match version("nft") {
        Ok(v) => check("nftables", true, v, ""),
        Err(e) => check(
            "nftables",
            false,
            e,
            "install nftables (apt-get install nftables): the gateway's rules need it",
        ),
    }
}

/// Whether `free` of `total` bytes is room enough for sandboxes and images: at least 5 GiB
/// and 10 %.
pub fn enough_space(free: u64, total: u64) -> bool {
    free >= 5 << 30 && free.saturating_mul(100) / total.max(1) >= 10
}

/// Free space where sandboxes and images live ([`enough_space`]).
pub fn disk(state_dir: &Path) -> DoctorCheck {
    match rustix::fs::statvfs(state_dir) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let total = s.f_blocks.saturating_mul(s.f_frsize).max(1);
            let pct = free * 100 / total;
            check(
                "disk",
                enough_space(free, total),
                format!(
                    "{} GiB free ({pct} %) at {}",
                    free >> 30,
                    state_dir.display()
                ),
                "free space there, or move state_dir to a larger file system",
            )
        }
        Err(e) => check(
            "disk",
            false,
            format!("{}: {e}", state_dir.display()),
            "check state_dir",
        ),
    }
}

/// Whether a mirror's host accepts a TCP connection within 3 s.
pub async fn mirror(registry: &str, url: &str) -> DoctorCheck {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or_default();
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else if url.starts_with("https") {
        format!("{hostport}:443")
    } else {
        format!("{hostport}:80")
    };
    let conn = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(&addr),
    )
    .await;
    let ok = matches!(conn, Ok(Ok(_)));
    check(
        "registry_mirror",
        ok,
        format!(
            "{registry} → {url}: {}",
            if ok { "reachable" } else { "no answer" }
        ),
        "start the mirror or fix registry_mirrors in islod.yaml",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_controllers_are_read_and_missing_ones_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        assert!(cgroups(d.path()).ok);
        std::fs::write(d.path().join("cgroup.controllers"), "cpu io\n").unwrap();
        let c = cgroups(d.path());
        assert!(
            !c.ok && c.detail.contains("memory, pids") && c.fix.is_some(),
            "{c:?}"
        );
        std::fs::remove_file(d.path().join("cgroup.controllers")).unwrap();
        for c in ["cpu", "memory", "pids"] {
            std::fs::create_dir_all(d.path().join(c)).unwrap();
            std::fs::write(d.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        assert_eq!(cgroups(d.path()).detail, "cgroup v1 with cpu, memory, pids");
        assert!(!cgroups(&d.path().join("nope")).ok);
        assert!(disk(d.path()).detail.contains("GiB free"));
    }

    #[test]
    fn space_is_enough_from_five_gib_and_ten_percent() {
        const GIB: u64 = 1 << 30;
        assert!(enough_space(5 * GIB, 50 * GIB));
        assert!(!enough_space(5 * GIB - 1, 50 * GIB), "under 5 GiB");
        assert!(!enough_space(24 * GIB, 252 * GIB), "under 10 %");
        assert!(enough_space(26 * GIB, 252 * GIB));
        assert!(!enough_space(0, 0));
        let d = tempfile::tempdir().unwrap();
        let c = disk(&d.path().join("nope"));
        assert!(!c.ok && c.detail.contains("nope"), "{c:?}");
    }
}
