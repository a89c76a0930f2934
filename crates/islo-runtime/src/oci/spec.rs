//! The OCI runtime configuration of a sandbox: what isolates it.

use serde_json::{Value, json};

use crate::SandboxSpec;

/// Capabilities kept for the sandbox's root (the agent; commands run as root with
/// `--run-as-user root`). Docker's default set less `NET_RAW` and `MKNOD`.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: &[&str] = &[
    "/proc/config.gz",
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Inputs beyond the spec that the driver decides.
pub struct SpecParams<'a> {
    pub agent_binary: &'a str,
    pub run_dir: &'a str,
    pub nofile_hard: u64,
    /// The pinned user namespace to join (`None`: none; the sandbox's root is the host's).
    pub userns: Option<&'a str>,
}

/// Build `config.json` for `spec`.
pub fn config(spec: &SandboxSpec, p: &SpecParams<'_>) -> Value {
    let caps = CAPABILITIES;
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": [islo_agent::AGENT_PATH_IN_SANDBOX],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                format!("ISLO_USER={}", spec.user),
                format!("ISLO_UID={}", spec.uid),
                format!("{}={}", islo_agent::LISTEN_FD_ENV, super::AGENT_LISTEN_FD),
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": [], "ambient": []
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": p.nofile_hard, "soft": p.nofile_hard.min(1024)}],
            // No `oomScoreAdj`: the agent keeps islod's score (lowering it would need
            // CAP_SYS_RESOURCE) and starts every command well above it
            // (islo_agent's WORKLOAD_OOM_SCORE_ADJ), so the OOM killer takes those first.
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": spec.hostname,
        "mounts": mounts(p),
        "linux": {
            "cgroupsPath": format!("/islo/{}", spec.id),
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}],
                "memory": {"limit": spec.limits.memory_bytes, "swap": spec.limits.memory_bytes},
                "cpu": {"quota": i64::from(spec.limits.vcpus) * 100_000, "period": 100_000u64},
                "pids": {"limit": spec.limits.pids}
            },
            "namespaces": namespaces(spec, p),
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
            "seccomp": super::seccomp::profile()
        }
    })
}

/// Every namespace of its own; the user namespace (joined first, by the runtime) pinned by
/// the driver, which also owns the network namespace.
fn namespaces(spec: &SandboxSpec, p: &SpecParams<'_>) -> Value {
    let mut ns = vec![
        json!({"type": "pid"}),
        network_ns(spec),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if let Some(path) = p.userns {
        ns.push(json!({"type": "user", "path": path}));
    }
    Value::Array(ns)
}

/// A new empty network namespace, or the one [`super::net`] built.
fn network_ns(spec: &SandboxSpec) -> Value {
    match &spec.network {
        Some(_) => json!({"type": "network", "path": super::net::netns_path(&spec.id)}),
        None => json!({"type": "network"}),
    }
}

fn mounts(p: &SpecParams<'_>) -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        {"destination": islo_agent::AGENT_PATH_IN_SANDBOX, "type": "bind", "source": p.agent_binary,
         "options": ["bind", "ro", "nosuid", "nodev"]},
        {"destination": islo_agent::RUN_DIR_IN_SANDBOX, "type": "bind", "source": p.run_dir,
         "options": ["bind", "nosuid", "nodev", "noexec"]}
    ])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::conformance;

    pub(crate) fn params(userns: Option<&str>) -> SpecParams<'_> {
        SpecParams {
            agent_binary: "/a",
            run_dir: "/r",
            nofile_hard: 20000,
            userns,
        }
    }

    #[test]
    fn isolation_settings() {
        let spec = conformance::spec("box", vec![]);
        let c = config(&spec, &params(None));
        assert_eq!(c["hostname"], "box");
        assert_eq!(c["process"]["noNewPrivileges"], true);
        let ns: Vec<&str> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        for want in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
            assert!(ns.contains(&want), "{want} namespace");
        }
        let caps = c["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(
            !caps
                .iter()
                .any(|c| c == "CAP_SYS_ADMIN" || c == "CAP_NET_RAW" || c == "CAP_SYS_PTRACE")
        );
        assert_eq!(c["linux"]["resources"]["memory"]["limit"], 256u64 << 20);
        assert_eq!(c["linux"]["resources"]["pids"]["limit"], 128);
        assert_eq!(c["linux"]["resources"]["cpu"]["quota"], 100_000);
        assert_eq!(c["process"]["rlimits"][0]["hard"], 20000);
        assert!(
            c["linux"]["maskedPaths"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "/proc/kcore")
        );
        let agent = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == islo_agent::AGENT_PATH_IN_SANDBOX)
            .unwrap();
        assert!(
            agent["options"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o == "ro")
        );
        assert!(
            !ns.contains(&"user"),
            "no user namespace unless one is pinned"
        );
    }

    #[test]
    fn a_pinned_user_namespace_is_joined() {
        let spec = conformance::spec("box", vec![]);
        let c = config(&spec, &params(Some("/s/userns")));
        let user: Vec<&Value> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "user")
            .collect();
        assert_eq!(user, [&json!({"type": "user", "path": "/s/userns"})]);
        assert!(
            c["linux"].get("uidMappings").is_none(),
            "the joined namespace maps ids"
        );
        assert_eq!(c["process"]["noNewPrivileges"], true);
    }
}
