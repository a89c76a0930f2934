//! Hostile code inside a sandbox: what it must not be able to do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, stderr, stdout};

#[test]
fn cannot_see_host_processes_files_or_mount() {
    let env = Env::new();
    let secret = env.dir.path().join("host-secret");
    std::fs::write(&secret, "do not read").unwrap();
    let probe = format!(
        "ls /proc | grep -c '^[0-9]'; cat {} 2>&1 || echo no-host-file; mount -t tmpfs none /mnt 2>&1 || echo no-mount; \
         echo net: $(ls /sys/class/net); ping -c1 -W1 127.0.0.1 >/dev/null 2>&1 || true",
        secret.display()
    );
    let o = env.islo(&[
        "use",
        "probe",
        "-i",
        &env.busybox(),
        "--run-as-user",
        "root",
        "--",
        "sh",
        "-c",
        &probe,
    ]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].parse::<u32>().unwrap() < 10,
        "sees host processes: {out}"
    );
    assert!(out.contains("no-host-file"), "{out}");
    assert!(
        out.contains("no-mount"),
        "root in a sandbox must not mount: {out}"
    );
    assert!(
        out.lines().any(|l| l.trim() == "net: eth0 lo"),
        "loopback and the link to the gateway, nothing else: {out}"
    );
    // The way out is the gateway: the attempt is in its log (the bypass attempts are tested
    // in egress_isolation.rs).
    // nc shuts down its sending side as soon as the request is out; each one must still be
    // answered (the gateway's 502: nothing listens at 10.1.2.3).
    let sent = env.sh(
        "probe",
        "for i in 1 2 3 4 5 6 7 8 9 10; do \
         printf 'GET /isolation-probe HTTP/1.0\\r\\nHost: 10.1.2.3\\r\\n\\r\\n' | nc -w 5 10.1.2.3 80 | head -1; \
         done",
    );
    assert_eq!(
        stdout(&sent).matches("HTTP/1.0 502").count(),
        10,
        "{}{}",
        stdout(&sent),
        stderr(&sent)
    );
    // Decisions are written in batches: wait for this one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut log = env.ok(&["gateway", "log", "probe"]);
    while !log.contains("10.1.2.3/isolation-probe") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        log = env.ok(&["gateway", "log", "probe"]);
    }
    assert!(
        log.contains("10.1.2.3/isolation-probe"),
        "{log}\nthe probe said: {}{}\nislod: {}",
        stdout(&sent),
        stderr(&sent),
        std::fs::read_to_string(env.state().join("islod.log")).unwrap_or_default()
    );
    // Dangerous system calls are refused even to root.
    let o = env.islo(&[
        "use",
        "probe",
        "--run-as-user",
        "root",
        "--",
        "unshare",
        "-n",
        "true",
    ]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "unshare must fail: {}",
        stderr(&o)
    );
}

#[test]
fn image_layers_are_never_written() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "rw",
        "-i",
        &env.busybox(),
        "--run-as-user",
        "root",
        "--",
        "sh",
        "-c",
        "echo owned > /bin/owned; echo x >> /etc/passwd; rm /bin/ls; echo done",
    ]);
    assert_eq!(stdout(&o), "done\n", "{}", stderr(&o));
    let layers = env.state().join("images/layers");
    for layer in std::fs::read_dir(&layers).unwrap().flatten() {
        let l = layer.path();
        assert!(!l.join("bin/owned").exists());
        assert!(
            std::fs::symlink_metadata(l.join("bin/ls")).is_ok(),
            "the image's /bin/ls must survive"
        );
        let passwd = std::fs::read_to_string(l.join("etc/passwd")).unwrap();
        // Exactly what scripts/test-env.sh put in the busybox image.
        assert_eq!(
            passwd, "root:x:0:0:root:/root:/bin/sh\n",
            "layer passwd changed"
        );
    }
    // A second sandbox of the same image sees the pristine image.
    let o = env.sh("rw2", "ls /bin/owned 2>/dev/null || echo clean; ls /bin/ls");
    assert_eq!(stdout(&o), "clean\n/bin/ls\n");
}

#[test]
fn fork_bomb_stops_at_the_pids_limit() {
    let mut env = Env::new();
    env.set("ISLOD_PIDS_LIMIT", "64");
    // The bomb runs in a subshell (a shell that cannot fork gives up); counting uses
    // builtins only, since at the limit nothing else can start.
    let o = env.sh(
        "bomb",
        "(for i in $(seq 1 300); do sleep 2 & done) 2>/dev/null; set -- /proc/[0-9]*; echo $#",
    );
    let n: u32 = stdout(&o)
        .trim()
        .lines()
        .last()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(n > 0 && n <= 64, "processes: {n} ({})", stderr(&o));
    // Once the sleeps end the sandbox works again.
    let mut alive = false;
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        if stdout(&env.sh("bomb", "echo alive")) == "alive\n" {
            alive = true;
            break;
        }
    }
    assert!(alive, "sandbox did not recover after the fork bomb");

    // A bomb that keeps the limit full: an exec is refused, saying why, and a stop ends it.
    // (Once the first bomb's sleeps are all gone; it starts a second later, so the exec that
    // launches it ends first.)
    std::thread::sleep(std::time::Duration::from_secs(3));
    let keep_full = "(sleep 1; while :; do sleep 60 & done) >/dev/null 2>&1 &";
    let o = env.sh("bomb", keep_full);
    assert!(o.status.success(), "{}", stderr(&o));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let o = env.islo(&["use", "bomb", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("process limit"), "{}", stderr(&o));
    assert!(env.islo(&["stop", "bomb", "-f"]).status.success());
    assert_eq!(stdout(&env.sh("bomb", "echo alive")), "alive\n");
}

#[test]
fn memory_past_the_limit_is_oom_killed_and_the_sandbox_survives() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "mem",
        "--memory",
        "256",
        "--",
        "python3",
        "-c",
        "x = bytearray(600 * 1024 * 1024); print('survived')",
    ]);
    assert_eq!(
        o.status.code(),
        Some(137),
        "OOM kill is SIGKILL: {}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("survived"));
    let o = env.islo(&["use", "mem", "--", "python3", "-c", "print('still here')"]);
    assert_eq!(stdout(&o), "still here\n", "{}", stderr(&o));
}

#[test]
fn the_agents_socket_is_out_of_the_sandboxs_reach() {
    let env = Env::new();
    assert!(env.sh("swap", "true").status.success());
    // A host service islod must never be pointed at, and the path where the agent's socket
    // used to live inside the sandbox.
    let host_sock = env.dir.path().join("host-service.sock");
    let listener = std::os::unix::net::UnixListener::bind(&host_sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let script = format!(
        "rm -f /.islo/run/agent.sock && ln -s {} /.islo/run/agent.sock",
        host_sock.display()
    );
    let o = env.islo(&[
        "use",
        "swap",
        "--run-as-user",
        "root",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.islo(&["use", "swap", "--", "echo", "real"]);
    assert_eq!(stdout(&o), "real\n", "{}", stderr(&o));
    assert!(
        listener.accept().is_err(),
        "islod connected to a host socket through the sandbox's symlink"
    );

    // Root inside listens where the agent used to, to answer islod in its place.
    let impostor = r#"
import os, socket, sys
p = "/.islo/run/agent.sock"
try:
    os.unlink(p)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX)
s.bind(p)
s.listen(16)
pid = os.fork()
if pid == 0:
    while True:
        c, _ = s.accept()
        c.sendall(b"\x00\x00\x00\x06\x02forged")
        c.close()
print("listening")
"#;
    let o = env.islo(&[
        "use",
        "imp",
        "-i",
        &env.debian(),
        "--run-as-user",
        "root",
        "--",
        "python3",
        "-c",
        impostor,
    ]);
    assert_eq!(stdout(&o), "listening\n", "{}", stderr(&o));
    let o = env.islo(&["use", "imp", "--", "echo", "from the agent"]);
    assert_eq!(stdout(&o), "from the agent\n", "{}", stderr(&o));
}

#[test]
fn pid1_output_is_not_a_host_file() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "logs",
        "-i",
        &env.busybox(),
        "--run-as-user",
        "root",
        "--",
        "sh",
        "-c",
        "readlink /proc/1/fd/1 2>/dev/null || echo hidden; echo flood > /proc/1/fd/1",
    ]);
    // The agent is not dumpable: even root in the sandbox cannot reach its descriptors.
    assert_eq!(stdout(&o).lines().next(), Some("hidden"), "{}", stderr(&o));
    let id = env.id_of("logs");
    let host_log = env.state().join("sandboxes").join(&id).join("agent.log");
    let text = std::fs::read_to_string(host_log).unwrap_or_default();
    assert!(
        !text.contains("flood"),
        "the sandbox wrote into a host file: {text}"
    );
}

#[test]
fn disk_quota_bounds_the_writable_layer() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "full",
        "-i",
        &env.busybox(),
        "--disk",
        "1",
        "--",
        "sh",
        "-c",
        "dd if=/dev/zero of=/workspace/big bs=1M count=1500 2>&1; echo rc=$?",
    ]);
    let out = stdout(&o);
    assert!(
        out.contains("No space left") && !out.contains("rc=0"),
        "{out} {}",
        stderr(&o)
    );
    // The sandbox stays usable: free the space and write again.
    let o = env.sh(
        "full",
        "rm /workspace/big && echo ok > /workspace/small && cat /workspace/small",
    );
    assert_eq!(stdout(&o), "ok\n", "{}", stderr(&o));
}
