//! The seccomp profile of every sandbox.
//!
//! crun and runc have no built-in profile, so islo ships one: allow by default and refuse the
//! system calls Docker's default profile refuses to an unprivileged container (kernel
//! modules, mounts, namespaces, keyrings, clocks, reboot, BPF, perf, userfaultfd, handle
//! based opens). `clone` with namespace flags is refused; `clone3` answers ENOSYS so libcs
//! fall back to `clone`, whose flags can be checked. Like Docker's current profile it also
//! refuses `AF_VSOCK` sockets (the host's and hypervisor's vsock ports), `io_uring` (ENOSYS,
//! so programs fall back to ordinary I/O) and `personality` flags that weaken memory
//! protections (`READ_IMPLIES_EXEC`, `MMAP_PAGE_ZERO`); a query (`0xffffffff`) still answers.

use serde_json::{Value, json};

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// System calls refused with EPERM.
pub const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
];

/// System calls that answer ENOSYS, as on a kernel without them.
pub const ABSENT: &[&str] = &["io_uring_setup", "io_uring_enter", "io_uring_register"];

/// `AF_VSOCK`.
const AF_VSOCK: u64 = 40;

/// `personality` flags refused: `READ_IMPLIES_EXEC`, `MMAP_PAGE_ZERO`.
const PERSONALITY_FLAGS: &[u64] = &[0x0040_0000, 0x0010_0000];

/// Namespace flags refused in `clone`.
const CLONE_NS_FLAGS: &[u64] = &[
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
    0x0000_0080, // CLONE_NEWTIME
];

/// The profile, in OCI `linux.seccomp` form.
pub fn profile() -> Value {
    let mut rules = vec![
        json!({"names": DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}),
        json!({"names": ABSENT, "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}),
        json!({
            "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
            "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_EQ"}]
        }),
    ];
    // A flag set with any other of the low 32 bits clear: the query (all 32 set) passes.
    // (libseccomp takes one comparison per argument, so "flag set and not the query" is
    // spelled as one rule per other bit.)
    for flag in PERSONALITY_FLAGS {
        for bit in (0..32).map(|b| 1u64 << b).filter(|b| b != flag) {
            let mask = flag | bit;
            rules.push(json!({
                "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                "args": [{"index": 0, "value": mask, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]
            }));
        }
    }
    for flag in CLONE_NS_FLAGS {
        rules.push(json!({
            "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules
    })
}
