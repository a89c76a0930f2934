//! The `gvisor` isolation class through the real CLI, islod and runsc: everything a user does
//! in a sandbox works in one, its system calls are answered by gVisor and not the host's
//! kernel, its egress still goes only through the gateway, and bad input is refused with the
//! classes the host offers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::process::Stdio;

use common::gateway::{curl, log_json, with_upstream};
use common::{Env, Tmux, assert_no_trace, stderr, stdout};

fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&env.ok(args)).unwrap()
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_gvisor_sandbox_does_what_a_container_does_and_gvisor_answers_its_system_calls() {
    let env = Env::new();
    let bb = env.busybox();
    let o = env.islo(&[
        "use",
        "gv",
        "-i",
        &bb,
        "--isolation",
        "gvisor",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let v = json(&env, &["status", "gv", "-o", "json"]);
    assert_eq!(v["isolation"]["class"], "gvisor", "{v}");
    assert!(v["isolation"]["warning"].is_null(), "{v}");
    assert!(env.ok(&["status", "gv"]).contains("Isolation: gvisor"));
    // The kernel it talks to is gVisor's: the host's release and version are not what it sees.
    let seen = env.ok(&["use", "gv", "--", "sh", "-c", "uname -r; cat /proc/version"]);
    assert!(
        !seen.contains(&host_kernel()),
        "the host kernel answered: {seen}"
    );
    let host_version = std::fs::read_to_string("/proc/version").unwrap();
    assert!(!seen.contains(host_version.trim()), "{seen}");
    // A container-class sandbox on the same host sees the host's kernel.
    let plain = env.ok(&["use", "plain", "-i", &bb, "--", "uname", "-r"]);
    assert_eq!(plain.trim(), host_kernel());
    // Signals, stdin, files both ways.
    let o = env.islo(&["use", "gv", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137));
    let mut c = env.islo_cmd();
    c.args(["use", "gv", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"through stdin").unwrap();
    assert_eq!(child.wait_with_output().unwrap().stdout, b"through stdin");
    let local = env.dir.path().join("in.txt");
    std::fs::write(&local, "copied in").unwrap();
    env.ok(&["cp", local.to_str().unwrap(), "gv:in.txt"]);
    assert_eq!(
        env.ok(&["use", "gv", "--", "cat", "/workspace/in.txt"]),
        "copied in"
    );
    env.ok(&[
        "use",
        "gv",
        "--",
        "sh",
        "-c",
        "echo made inside > /workspace/out.txt",
    ]);
    // /tmp is the sandbox's disk, as in a container (not a tmpfs of gVisor's own).
    env.ok(&["cp", local.to_str().unwrap(), "gv:/tmp/in-tmp.txt"]);
    assert_eq!(
        env.ok(&["use", "gv", "--", "cat", "/tmp/in-tmp.txt"]),
        "copied in"
    );
    let back = env.dir.path().join("out.txt");
    env.ok(&["cp", "gv:out.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "made inside\n");
    // A persistent session with a terminal, detached and listed.
    let sh = Tmux::start(&env, &["use", "gv", "-s", "work"], 100, 30);
    sh.wait_for("detach with");
    sh.line("echo tty-$((6*7)) $(tty)");
    sh.wait_for("tty-42 /dev/pts/");
    sh.keys(&["C-p", "C-q"]);
    sh.wait_for("CLI-EXIT=0");
    assert!(env.ok(&["use", "gv", "--list-sessions"]).contains("work"));
    // Pausing is refused by class and changes nothing.
    let p = env.islo(&["pause", "gv"]);
    assert!(!p.status.success());
    assert!(stderr(&p).contains("gvisor"), "{}", stderr(&p));
    assert_eq!(
        json(&env, &["status", "gv", "-o", "json"])["status"],
        "running"
    );
    // A filesystem snapshot starts another gVisor sandbox with the files.
    env.ok(&["snapshot", "save", "gv", "--name", "gvsnap"]);
    let o = env.ok(&[
        "use",
        "gv2",
        "--snapshot",
        "gvsnap",
        "--isolation",
        "gvisor",
        "--",
        "cat",
        "/workspace/out.txt",
    ]);
    assert_eq!(o, "made inside\n");
    // Stop, islod's restart and a start keep it what it was.
    env.ok(&["stop", "gv"]);
    env.stop_islod();
    assert_eq!(
        env.ok(&["use", "gv", "--", "cat", "/tmp/in-tmp.txt"]),
        "copied in"
    );
    assert_eq!(
        env.ok(&["use", "gv", "--", "cat", "/workspace/in.txt"]),
        "copied in"
    );
    env.stop_islod();
    assert_eq!(
        json(&env, &["status", "gv", "-o", "json"])["status"],
        "running"
    );
    assert_eq!(env.ok(&["use", "gv", "--", "echo", "adopted"]), "adopted\n");
    let id = env.id_of("gv");
    env.ok(&["rm", "gv", "gv2", "plain", "-f"]);
    assert_no_trace(&env, &id);
    let runsc_state = env.state().join("runtime-gvisor").join(&id);
    assert!(!runsc_state.exists(), "runsc's record of {id} left behind");
}

#[test]
fn port_forward_and_ssh_reach_a_gvisor_sandbox() {
    let env = Env::new();
    let image = env.debian();
    env.ok(&[
        "use",
        "gn",
        "-i",
        &image,
        "--isolation",
        "gvisor",
        "--",
        "true",
    ]);
    let o = env.sh(
        "gn",
        "cd /tmp && echo served-by-gvisor > index.html && \
         (python3 -m http.server 8000 >/dev/null 2>&1 &)",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    common::wait_listening(&env, "gn", 8000);
    let (mut pf, port) = common::port_forward(&env, "gn", 8000, Stdio::null());
    let got = std::process::Command::new("curl")
        .args([
            "-sS",
            "-m",
            "10",
            &format!("http://127.0.0.1:{port}/index.html"),
        ])
        .output()
        .unwrap();
    let _ = pf.kill();
    assert_eq!(stdout(&got), "served-by-gvisor\n", "{}", stderr(&got));
    // OpenSSH with a certificate islod signed, to a shell gVisor runs.
    let home = env.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let islo = |args: &[&str]| {
        env.islo_cmd()
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .args(args)
            .output()
            .unwrap()
    };
    let o = islo(&["ssh", "--setup"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = islo(&["ssh", "gn", "--", "uname -r; echo over-ssh"]);
    assert!(
        stdout(&o).contains("over-ssh"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(!stdout(&o).contains(&host_kernel()), "{}", stdout(&o));
}

#[test]
fn gvisor_egress_goes_through_the_gateway_and_nowhere_else() {
    let (env, up, _certs) = with_upstream();
    env.ok(&[
        "use",
        "ge",
        "-i",
        &env.debian(),
        "--isolation",
        "gvisor",
        "--",
        "true",
    ]);
    let (h, s) = (up.http.to_string(), up.https.to_string());
    let (code, _) = curl(&env, "ge", &[&format!("http://up.test:{h}/echo/plain")]);
    assert_eq!(code, 200);
    // TLS is intercepted with the installation's CA, which the gVisor sandbox trusts too.
    let (code, _) = curl(&env, "ge", &[&format!("https://up.test:{s}/echo/tls")]);
    assert_eq!(code, 200);
    let log = log_json(&env, "ge");
    assert!(
        log.iter()
            .any(|e| e["path"] == "/echo/tls" && e["scheme"] == "https"),
        "{log:?}"
    );
    // The upstream listens on the host's loopback: straight there is not a way out, and a
    // connection to any other address reaches the gateway, not that address.
    let o = env.sh(
        "ge",
        &format!(
            "python3 - <<'EOF'\n{}\nEOF",
            [
                "import socket",
                "for host, port in [('127.0.0.1', PORT), ('10.255.255.1', 22)]:",
                "    try:",
                "        s = socket.create_connection((host, port), timeout=3)",
                "        s.sendall(b'GET /echo/direct HTTP/1.0\\r\\nHost: up.test\\r\\n\\r\\n')",
                "        print(host, 'answered', s.recv(64))",
                "    except OSError as e:",
                "        print(host, 'refused', e)",
            ]
            .join("\n")
            .replace("PORT", &h)
        ),
    );
    let out = stdout(&o);
    assert_eq!(
        out.lines().count(),
        2,
        "both attempts reported: {out}{}",
        stderr(&o)
    );
    assert!(
        out.contains("127.0.0.1 refused"),
        "the host's loopback: {out}"
    );
    // Any other address is the gateway's to answer: its 502, never the destination.
    let other = out.lines().find(|l| l.starts_with("10.255.255.1")).unwrap();
    assert!(
        other.contains("refused") || other.contains("502 Bad Gateway"),
        "{other}"
    );
    assert!(
        !up.requests()
            .iter()
            .any(|r| r["path"].as_str().is_some_and(|p| p.contains("direct"))),
        "the upstream was reached past the gateway"
    );
}

/// Wait for islod to notice that sandbox `name` ended, and check it says why.
fn wait_stopped(env: &Env, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while json(env, &["status", name, "-o", "json"])["status"] == "running" {
        assert!(
            std::time::Instant::now() < deadline,
            "its end was not noticed"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let v = json(env, &["status", name, "-o", "json"]);
    assert!(
        v["status_reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{v}"
    );
}

#[test]
fn gvisor_bounds_hostile_code() {
    let env = Env::new();
    let bb = env.busybox();
    env.ok(&[
        "use",
        "gh",
        "-i",
        &bb,
        "--isolation",
        "gvisor",
        "--memory",
        "256",
        "--",
        "true",
    ]);
    // The host's files are not there: a file on the host is not found by its path.
    let secret = env.dir.path().join("host-secret");
    std::fs::write(&secret, "host only").unwrap();
    let o = env.sh(
        "gh",
        &format!(
            "cat {} 2>&1; cat /proc/1/root{} 2>&1",
            secret.display(),
            secret.display()
        ),
    );
    assert!(!stdout(&o).contains("host only"), "{}", stdout(&o));
    // Root inside cannot reach the host's block devices or kernel knobs.
    let o = env.root_sh("gh", "echo 1 > /proc/sys/kernel/sysrq 2>&1; ls /dev");
    assert!(
        !stdout(&o).contains("sda") && !stdout(&o).contains("vda"),
        "{}",
        stdout(&o)
    );
    // Root inside cannot write into the agent's socket directory (the host's, outside its
    // disk quota), nor replace or rename the socket: the agent still answers.
    let o = env.root_sh(
        "gh",
        "cd /.islo/sock; head -c 1048576 /dev/zero > big 2>&1; echo write=$?; \
         mkdir d 2>&1; echo mkdir=$?; rm -f agent.sock 2>&1; echo rm=$?; \
         mv agent.sock old 2>&1; echo mv=$?",
    );
    let out = stdout(&o);
    for refused in ["write=1", "mkdir=1", "rm=1", "mv=1"] {
        assert!(out.contains(refused), "{refused}: {out}");
    }
    let sock_dir = env
        .state()
        .join("sandboxes")
        .join(env.id_of("gh"))
        .join("sock");
    let names: Vec<_> = std::fs::read_dir(&sock_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["agent.sock"]);
    assert_eq!(env.ok(&["use", "gh", "--", "echo", "agent"]), "agent\n");
    // A fork bomb reaches the pids cgroup, whose tasks are gVisor's own too (about ten per
    // process inside, under ptrace), so it ends the whole sandbox: its cgroup held it, another
    // sandbox goes on, islod records why, and the next use starts it again.
    env.ok(&["use", "other", "-i", &bb, "--", "true"]);
    let o = env.sh(
        "gh",
        "for i in $(seq 1 3000); do sleep 30 & done 2>/dev/null; echo forked",
    );
    assert!(!o.status.success(), "{}", stdout(&o));
    wait_stopped(&env, "gh");
    assert_eq!(
        env.ok(&["use", "other", "--", "echo", "unharmed"]),
        "unharmed\n"
    );
    // Memory past its limit ends it (gVisor's kernel is one host process, which the OOM
    // killer takes), and nothing else: islod records it and the next use starts it again.
    env.ok(&["use", "gh", "--", "true"]);
    let o = env.sh("gh", "a=x; while true; do a=$a$a; done");
    assert!(!o.status.success());
    wait_stopped(&env, "gh");
    assert_eq!(env.ok(&["use", "gh", "--", "echo", "back"]), "back\n");
}

#[test]
fn unknown_classes_and_a_host_without_runsc_are_refused_with_what_it_offers() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "x",
        "-i",
        &env.busybox(),
        "--isolation",
        "vm",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("container, gvisor"), "{}", stderr(&o));
    assert!(
        env.islo(&["status", "x"]).status.code() == Some(3),
        "nothing was made"
    );
    let classes = json(&env, &["api", "/system"]);
    assert_eq!(
        classes["isolation_classes"],
        serde_json::json!(["container", "gvisor"])
    );
    // The API answers 400 with the same list.
    let o = env.islo(&[
        "api",
        "/sandboxes",
        "-X",
        "POST",
        "-d",
        r#"{"name":"yy","isolation":"kvm"}"#,
    ]);
    assert!(!o.status.success());
    assert!(stdout(&o).contains("container, gvisor"), "{}", stdout(&o));

    let without = Env::with_config("isolation:\n  runsc: /nonexistent/runsc\n");
    let o = without.islo(&[
        "use",
        "z",
        "-i",
        &without.busybox(),
        "--isolation",
        "gvisor",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("offers: container"), "{}", stderr(&o));
    let doctor = without.ok(&["doctor"]);
    assert!(doctor.contains("gvisor not offered"), "{doctor}");
    // An operator default of gvisor makes sandboxes whose create names no class gVisor's.
    let def = Env::with_config("isolation:\n  class: gvisor\n");
    def.ok(&["use", "dd", "-i", &def.busybox(), "--", "true"]);
    let v = json(&def, &["status", "dd", "-o", "json"]);
    assert_eq!(v["isolation"]["class"], "gvisor", "{v}");
    let classes = json(&def, &["api", "/system"]);
    assert_eq!(
        classes["isolation_classes"][0], "gvisor",
        "the default first"
    );
    def.ok(&["rm", "dd", "-f"]);
    // An operator default the host cannot run stops islod with the reason.
    let bad = Env::with_config("isolation:\n  class: gvisor\n  runsc: /nonexistent/runsc\n");
    let o = bad.islo(&["ls"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("isolation.class"), "{}", stderr(&o));
}
