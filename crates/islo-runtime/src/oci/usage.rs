//! A sandbox's resource use, read from its cgroup (`/islo/<id>`): cgroup v2's
//! `memory.current` and `cpu.stat`, or on a v1 or hybrid host the `memory` and `cpuacct`
//! controllers' counters.

use std::path::Path;

use crate::{SandboxId, Usage};

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `usage_usec` of a cgroup v2 `cpu.stat`.
fn usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// Under cgroup root `root` (normally `/sys/fs/cgroup`).
pub fn read(root: &Path, id: &SandboxId) -> Option<Usage> {
    let v2 = root.join("islo").join(&id.0);
    if let Some(memory_bytes) = read_u64(&v2.join("memory.current")) {
        let cpu = std::fs::read_to_string(v2.join("cpu.stat")).ok();
        return Some(Usage {
            memory_bytes,
            cpu_usec: cpu.as_deref().and_then(usage_usec).unwrap_or(0),
        });
    }
    let memory_bytes = read_u64(
        &root
            .join("memory/islo")
            .join(&id.0)
            .join("memory.usage_in_bytes"),
    )?;
    let cpu_ns =
        read_u64(&root.join("cpuacct/islo").join(&id.0).join("cpuacct.usage")).unwrap_or(0);
    Some(Usage {
        memory_bytes,
        cpu_usec: cpu_ns / 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SandboxId {
        SandboxId("sb1".into())
    }

    #[test]
    fn cgroup_v2_counters_are_read() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("islo/sb1");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("memory.current"), "4096\n").unwrap();
        std::fs::write(d.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
        assert_eq!(
            read(root.path(), &id()),
            Some(Usage {
                memory_bytes: 4096,
                cpu_usec: 1500
            })
        );
    }

    #[test]
    fn cgroup_v1_counters_are_read() {
        let root = tempfile::tempdir().unwrap();
        let m = root.path().join("memory/islo/sb1");
        let c = root.path().join("cpuacct/islo/sb1");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(m.join("memory.usage_in_bytes"), "8192").unwrap();
        std::fs::write(c.join("cpuacct.usage"), "2000000").unwrap();
        assert_eq!(
            read(root.path(), &id()),
            Some(Usage {
                memory_bytes: 8192,
                cpu_usec: 2000
            })
        );
    }

    #[test]
    fn nothing_there_is_none() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(read(root.path(), &id()), None);
    }
}
