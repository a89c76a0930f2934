//! Hostile sandboxes and tenants against islod itself: its stack, memory and descriptors, the
//! host's disk, the image cache, the seccomp wall, the host's loopback services. Each test
//! performs the attack against a real islod and a real sandbox, then checks that islod is
//! still the same process and still serves.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{Env, agent_pid, stderr, stdout};

/// `islo ARGS`, failing the test if it takes longer than `secs` (a frozen sandbox or a hung
/// islod must not hang the suite).
fn islo_within(env: &Env, args: &[&str], secs: u64) -> Output {
    let mut child = env
        .islo_cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("islo {args:?} took more than {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// islod is still process `pid` and answers.
#[track_caller]
fn still_serving(env: &Env, pid: i32) {
    assert_eq!(env.islod_pid(), Some(pid), "islod was replaced");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "islod died"
    );
    let o = islo_within(env, &["ls"], 30);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A field of `/proc/PID/status`, in kB.
fn status_kb(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn deep_trees_neither_crash_islod_nor_freeze_a_save() {
    let env = Env::new();
    // Relative steps: the whole path is far longer than PATH_MAX.
    let o = env.islo(&[
        "use",
        "deep",
        "-i",
        &env.debian(),
        "--",
        "python3",
        "-c",
        "import os\nos.makedirs('/workspace/deep', exist_ok=True)\nos.chdir('/workspace/deep')\n\
         for i in range(5000):\n    os.mkdir('d')\n    os.chdir('d')\nprint('made', i + 1)",
    ]);
    assert_eq!(stdout(&o), "made 5000\n", "{}", stderr(&o));
    let pid = env.islod_pid().unwrap();

    let out = env.dir.path().join("out");
    let o = islo_within(
        &env,
        &["cp", "deep:/workspace/deep", out.to_str().unwrap()],
        120,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("deeper than"), "{}", stderr(&o));
    still_serving(&env, pid);

    let o = islo_within(&env, &["snapshot", "save", "deep", "--name", "deep"], 120);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("deeper than"), "{}", stderr(&o));
    still_serving(&env, pid);
    // The save's freeze was undone.
    let o = islo_within(&env, &["use", "deep", "--", "echo", "thawed"], 30);
    assert_eq!(stdout(&o), "thawed\n", "{}", stderr(&o));
}

#[test]
fn files_named_like_whiteouts_delete_nothing_outside_the_layer() {
    let env = Env::new();
    assert!(env.sh("wh", "true").status.success());
    // Another operation's file in the image cache's scratch space.
    let canary = env.state().join("images/tmp/canary");
    std::fs::write(&canary, "other operation").unwrap();
    let o = env.islo(&[
        "use",
        "wh",
        "--run-as-user",
        "root",
        "--",
        "sh",
        "-c",
        "touch /.wh... /.wh.. /workspace/.wh... && echo kept > /workspace/kept",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    env.ok(&["snapshot", "save", "wh", "--name", "wh"]);
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "other operation");
    let o = env.islo(&[
        "use",
        "wh2",
        "--snapshot",
        "wh",
        "--",
        "cat",
        "/workspace/kept",
    ]);
    assert_eq!(stdout(&o), "kept\n", "{}", stderr(&o));
}

#[test]
fn seccomp_refuses_vsock_io_uring_and_weaker_memory_protection() {
    let env = Env::new();
    let probe = r#"
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
try:
    socket.socket(40, socket.SOCK_STREAM)
    print("vsock open")
except OSError as e:
    print("vsock", e.errno)
params = ctypes.create_string_buffer(120)
r = libc.syscall(425, 1, params)
print("io_uring", r, ctypes.get_errno())
r = libc.personality(0x0400000)
print("read_implies_exec", r, ctypes.get_errno())
print("query", libc.personality(ctypes.c_ulong(0xffffffff)) >= 0)
"#;
    let o = env.islo(&[
        "use",
        "sc",
        "-i",
        &env.debian(),
        "--run-as-user",
        "root",
        "--",
        "python3",
        "-c",
        probe,
    ]);
    assert_eq!(
        stdout(&o),
        "vsock 1\nio_uring -1 38\nread_implies_exec -1 1\nquery True\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn host_details_are_masked() {
    let env = Env::new();
    assert!(
        std::path::Path::new("/proc/config.gz").exists(),
        "this host has no /proc/config.gz to hide; the test cannot show anything"
    );
    let o = env.islo(&[
        "use",
        "mask",
        "-i",
        &env.busybox(),
        "--run-as-user",
        "root",
        "--",
        "sh",
        "-c",
        "wc -c < /proc/config.gz; cat /proc/self/mountinfo",
    ]);
    let out = stdout(&o);
    assert!(out.starts_with("0\n"), "config.gz readable: {out}");
    let id = env.id_of("mask");
    let state = env.state().display().to_string();
    assert!(
        !out.contains(&id),
        "mountinfo shows the sandbox's id:\n{out}"
    );
    assert!(
        !out.contains(&state),
        "mountinfo shows the state directory:\n{out}"
    );
}

#[test]
fn the_agent_is_the_oom_killers_last_choice() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "oom",
        "-i",
        &env.busybox(),
        "--memory",
        "256",
        "--run-as-user",
        "root",
        "--",
        "sh",
        "-c",
        "cat /proc/1/oom_score_adj /proc/self/oom_score_adj; \
         echo -1000 > /proc/self/oom_score_adj 2>/dev/null && echo lowered || echo refused",
    ]);
    // The agent keeps islod's score (lowering it needs CAP_SYS_RESOURCE, which no one has
    // here); commands start far above it and cannot come back down.
    let islod =
        std::fs::read_to_string(format!("/proc/{}/oom_score_adj", env.islod_pid().unwrap()))
            .unwrap();
    assert_eq!(
        stdout(&o),
        format!("{islod}500\nrefused\n"),
        "{}",
        stderr(&o)
    );
    let o = env.sh("oom", "cat /proc/self/oom_score_adj");
    assert_eq!(stdout(&o), "500\n", "the sandbox user's commands too");
    // Many small processes, none much larger than the agent, well past the limit.
    let _ = env.sh(
        "oom",
        "for i in $(seq 1 60); do (x=$(head -c 8000000 /dev/zero | tr '\\0' a); sleep 3) & done; wait",
    );
    let o = islo_within(&env, &["use", "oom", "--", "echo", "alive"], 30);
    assert_eq!(stdout(&o), "alive\n", "{}", stderr(&o));
}

#[test]
fn a_huge_ca_bundle_costs_islod_no_memory() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "ca",
        "-i",
        &env.debian(),
        "--run-as-user",
        "root",
        "--",
        "truncate",
        "-s",
        "512M",
        "/etc/ssl/certs/ca-certificates.crt",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pid = env.islod_pid().unwrap();
    env.ok(&["stop", "ca"]);
    let before = status_kb(pid, "VmHWM:");
    let o = islo_within(
        &env,
        &[
            "use",
            "ca",
            "--",
            "sh",
            "-c",
            "stat -c %s /etc/ssl/certs/ca-certificates.crt; grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt",
        ],
        120,
    );
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}{}", stderr(&o));
    assert!(lines[0].parse::<u64>().unwrap() < 1 << 20, "{out}");
    assert_eq!(lines[1], "1", "islo's CA alone: {out}");
    let grew = status_kb(pid, "VmHWM:").saturating_sub(before);
    assert!(grew < 64 * 1024, "islod's peak memory grew by {grew} kB");
    still_serving(&env, pid);
}

/// A host service on loopback: counts the connections it gets and closes each at once.
fn host_service() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            h.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
    });
    (port, hits)
}

#[test]
fn image_pulls_reach_no_unconfigured_loopback_or_private_registry() {
    use std::sync::atomic::Ordering;
    let (port, hits) = host_service();
    let env = Env::new();
    for image in [
        format!("127.0.0.1:{port}/x:1"),
        format!("localhost:{port}/x:1"),
        "10.0.0.1:5000/x:1".to_string(),
        "169.254.169.254/latest:1".to_string(),
    ] {
        let o = islo_within(&env, &["use", "ssrf", "-i", &image, "--", "true"], 60);
        assert_ne!(o.status.code(), Some(0));
        assert!(
            stderr(&o).contains("private_registries"),
            "{image}: {}",
            stderr(&o)
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "islod connected to a host service for a tenant"
    );
    assert!(!env.ok(&["ls"]).contains("ssrf"), "nothing is left behind");
    // The mirror (configured) still serves, by its own address too.
    assert!(env.sh("ok", "true").status.success());

    // Listed, the operator's own loopback registry is reached.
    let env = Env::with_config(&format!("private_registries: [\"127.0.0.1:{port}\"]"));
    let image = format!("127.0.0.1:{port}/x:1");
    let o = islo_within(&env, &["use", "listed", "-i", &image, "--", "true"], 60);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        hits.load(Ordering::SeqCst) > 0,
        "a listed registry is reached"
    );
}

/// Bytes the image cache takes on disk (blocks, not apparent sizes).
fn cache_blocks(env: &Env) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-s", "-B1"])
        .arg(env.state().join("images"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn sparse_files_cost_a_snapshot_nothing_and_claims_past_the_disk_are_refused() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "sparse",
        "-i",
        &env.busybox(),
        "--disk",
        "1",
        "--",
        "truncate",
        "-s",
        "900M",
        "/workspace/sparse",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = cache_blocks(&env);
    env.ok(&["snapshot", "save", "sparse", "--name", "sparse"]);
    let grew = cache_blocks(&env).saturating_sub(before);
    assert!(grew < 32 << 20, "the snapshot took {grew} bytes of disk");
    let o = env.islo(&[
        "use",
        "restored",
        "--snapshot",
        "sparse",
        "--",
        "sh",
        "-c",
        "stat -c %s /workspace/sparse; head -c 1000000 /workspace/sparse | tr -d '\\0' | wc -c",
    ]);
    assert_eq!(stdout(&o), "943718400\n0\n", "{}", stderr(&o));

    // Claims past the disk: a snapshot stores no more than the sandbox's disk holds.
    let pid = env.islod_pid().unwrap();
    env.ok(&[
        "use",
        "sparse",
        "--",
        "truncate",
        "-s",
        "2048G",
        "/workspace/huge",
    ]);
    let o = islo_within(&env, &["snapshot", "save", "sparse", "--name", "huge"], 120);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("larger than its disk"),
        "{}",
        stderr(&o)
    );
    still_serving(&env, pid);
    let o = islo_within(&env, &["use", "sparse", "--", "echo", "thawed"], 30);
    assert_eq!(stdout(&o), "thawed\n", "{}", stderr(&o));
    let scratch: Vec<_> = std::fs::read_dir(env.state().join("images/tmp"))
        .unwrap()
        .collect();
    assert!(scratch.is_empty(), "scratch left: {scratch:?}");
}

/// `(digest hex, bytes)` of a blob.
fn blob(bytes: Vec<u8>) -> (String, Vec<u8>) {
    use sha2::Digest;
    (hex::encode(sha2::Sha256::digest(&bytes)), bytes)
}

/// An OCI image archive with one layer.
fn archive(layer: &(String, Vec<u8>)) -> Vec<u8> {
    let config = blob(
        serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": []}})
        .to_string()
        .into_bytes(),
    );
    let manifest = blob(
        serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{}", config.0), "size": config.1.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                "digest": format!("sha256:{}", layer.0), "size": layer.1.len()}]})
        .to_string()
        .into_bytes(),
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", manifest.0), "size": manifest.1.len()}]})
    .to_string();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", index.as_bytes());
    for (hex, bytes) in [&config, &manifest, layer] {
        add(&format!("blobs/sha256/{hex}"), bytes);
    }
    b.into_inner().unwrap()
}

/// `islo snapshot import PATH --name NAME`, which must fail.
fn import(env: &Env, path: &std::path::Path, name: &str) -> Output {
    let path = path.to_str().unwrap();
    let o = islo_within(env, &["snapshot", "import", path, "--name", name], 300);
    assert!(!o.status.success(), "{name} was imported");
    o
}

#[test]
fn import_bombs_are_refused_before_they_fill_the_disk() {
    let env = Env::new();
    env.ok(&["ls"]);
    let before = cache_blocks(&env);
    // 1.5 GB of content in a few hundred KB of zstd.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    {
        let mut t = tar::Builder::new(&mut enc);
        let mut h = tar::Header::new_gnu();
        let size = 1536u64 << 20;
        h.set_size(size);
        h.set_mode(0o644);
        let content = std::io::Read::take(std::io::repeat(b'a'), size);
        t.append_data(&mut h, "bomb", content).unwrap();
        t.finish().unwrap();
    }
    let layer = blob(enc.finish().unwrap());
    assert!(layer.1.len() < 1 << 20, "{} bytes", layer.1.len());
    let path = env.dir.path().join("bomb.tar");
    std::fs::write(&path, archive(&layer)).unwrap();
    let o = import(&env, &path, "bomb");
    assert!(
        stderr(&o).contains("more content than islod accepts"),
        "{}",
        stderr(&o)
    );
    let grew = cache_blocks(&env).saturating_sub(before);
    assert!(grew < 1 << 30, "the import wrote {grew} bytes");

    // A sparse entry in the archive itself: refused before anything is expanded.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(0);
    h.set_mode(0o644);
    {
        // 1.5 GB of zeros that the archive does not hold: one empty chunk at its end.
        let gnu = h.as_gnu_mut().unwrap();
        let octal = |n: u64| format!("{n:011o}\0").into_bytes();
        gnu.realsize.copy_from_slice(&octal(1536 << 20));
        gnu.sparse[0].offset.copy_from_slice(&octal(1536 << 20));
        gnu.sparse[0].numbytes.copy_from_slice(&octal(0));
    }
    b.append_data(&mut h, format!("blobs/sha256/{}", "ab".repeat(32)), &[][..])
        .unwrap();
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    let o = import(&env, &path, "sparse");
    assert!(
        stderr(&o).contains("not a regular file entry"),
        "{}",
        stderr(&o)
    );
    assert!(!env.ok(&["snapshot", "ls"]).contains("bomb"));
    let scratch: Vec<_> = std::fs::read_dir(env.state().join("images/tmp"))
        .unwrap()
        .collect();
    assert!(scratch.is_empty(), "scratch left: {scratch:?}");
}

#[test]
fn tenants_are_held_to_their_quotas_and_to_what_the_host_holds() {
    // islod raises pid_max to systemd's 4194304 when it starts, if it is lower.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        .max(4_194_304);
    let mut env = Env::with_config("quotas:\n  sandboxes: 2\n  vcpus: 3\n");
    // Two sandboxes at this limit would pass what pid_max leaves the host.
    env.set("ISLOD_PIDS_LIMIT", &((pid_max - 4096) / 2 + 1).to_string());
    let refused = |args: &[&str], why: &str| {
        let o = env.islo(args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(stderr(&o).contains(why), "{args:?}: {}", stderr(&o));
    };
    let bb = env.busybox();
    env.ok(&["use", "qa", "-i", &bb, "--", "true"]);
    refused(
        &["use", "qb", "-i", &bb, "--cpu", "2", "--", "true"],
        "quota exceeded: vcpus",
    );
    // The host: another running sandbox at this pids limit does not fit.
    refused(
        &["use", "qb", "-i", &bb, "--cpu", "1", "--", "true"],
        "pid_max",
    );
    env.ok(&["stop", "qa"]);
    env.ok(&["use", "qb", "-i", &bb, "--cpu", "1", "--", "true"]);
    refused(&["use", "qa", "--", "true"], "pid_max");
    env.ok(&["stop", "qb"]);
    refused(
        &["use", "qc", "-i", &bb, "--cpu", "1", "--", "true"],
        "quota exceeded: sandboxes",
    );
    let names = env.ok(&["ls"]);
    assert!(!names.contains("qc"), "nothing half-made: {names}");
    env.ok(&["rm", "qb", "-f"]);
    env.ok(&["use", "qc", "-i", &bb, "--cpu", "1", "--", "true"]);

    // A disk larger than the host's free space.
    let st = rustix::fs::statvfs(env.state().as_path()).unwrap();
    let free_gb = (st.f_bavail * st.f_frsize) >> 30;
    env.ok(&["rm", "qc", "-f"]);
    let o = env.islo(&[
        "use", "big", "-i", &bb, "--cpu", "1", "--disk", "100", "--", "true",
    ]);
    if free_gb < 101 {
        assert_ne!(o.status.code(), Some(0));
        assert!(stderr(&o).contains("does not fit"), "{}", stderr(&o));
        assert!(!env.ok(&["ls"]).contains("big"), "nothing half-made");
    } else {
        assert!(o.status.success(), "{free_gb} GB free: {}", stderr(&o));
    }
}

#[test]
fn a_dead_agent_is_noticed_and_the_sandbox_starts_again() {
    let env = Env::new();
    assert!(env.sh("dies", "true").status.success());
    let id = env.id_of("dies");
    // Killed at once (islod's next look finds no process to watch and asks the agent),
    // then again past that look, which arms a notice of the new agent's end (a pidfd).
    for wait in [Duration::ZERO, Duration::from_millis(2500)] {
        std::thread::sleep(wait);
        // What the OOM killer or a host operator would do.
        let pid = agent_pid(&id);
        assert!(
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            let v: serde_json::Value =
                serde_json::from_str(&env.ok(&["status", "dies", "-o", "json"])).unwrap();
            if v["status"] != "running" || Instant::now() > deadline {
                break v;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(status["status"], "stopped", "{status}");
        let reason = status["status_reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("agent") && reason.contains("islo use dies"),
            "{reason}"
        );
        // Stopped properly: its storage is unmounted.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&id), "mounts of {id} left behind");
        let o = islo_within(&env, &["use", "dies", "--", "echo", "back"], 60);
        assert_eq!(stdout(&o), "back\n", "{}", stderr(&o));
    }
}

#[test]
fn open_files_are_bounded_by_a_sandboxs_memory_not_the_hosts_file_table() {
    let env = Env::new();
    // islod sized the host's table so that memory, not a count, bounds open files.
    let o = env.islo(&[
        "use",
        "files",
        "-i",
        &env.debian(),
        "--memory",
        "256",
        "--",
        "true",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    let file_max: u64 = std::fs::read_to_string("/proc/sys/fs/file-max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        file_max >= mem_kb * 4,
        "fs.file-max {file_max} for {mem_kb} kB"
    );
    // Processes of a 256 MB sandbox opening files until something stops them.
    let hog = r#"
import os, resource, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
r, w = os.pipe()
kids = []
for k in range(64):
    pid = os.fork()
    if pid == 0:
        n = 0
        try:
            while True:
                os.open("/dev/null", os.O_RDONLY)
                n += 1
        except OSError:
            pass
        os.write(w, b"%d\n" % n)
        time.sleep(4)
        os._exit(0)
    kids.append(pid)
os.close(w)
time.sleep(3)
print(open("/proc/sys/fs/file-nr").read().split()[0], flush=True)
"#;
    let o = islo_within(&env, &["use", "files", "--", "python3", "-c", hog], 120);
    // Whatever the hog got (the OOM killer may end it), the host can still open files.
    let held: u64 = stdout(&o).trim().parse().unwrap_or(0);
    assert!(held < file_max, "{held} of {file_max} open");
    let host = std::fs::File::open("/proc/self/status");
    assert!(host.is_ok(), "the host cannot open a file: {host:?}");
    still_serving(&env, env.islod_pid().unwrap());
    // The hog's children hold their files (and the sandbox's memory) a few seconds longer;
    // a command started meanwhile may be the OOM killer's pick. Once they are gone, it runs.
    let mut o = islo_within(&env, &["use", "files", "--", "echo", "alive"], 60);
    for _ in 0..10 {
        if stdout(&o) == "alive\n" {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        o = islo_within(&env, &["use", "files", "--", "echo", "alive"], 60);
    }
    assert_eq!(stdout(&o), "alive\n", "{:?} {}", o.status, stderr(&o));
}
