//! End to end: `islo use` creates and runs, exit codes and signals, env/workdir/user,
//! stop/start keeps files, rm leaves nothing, restarts of islod lose nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, assert_no_trace, stderr, stdout};

#[test]
fn create_exec_exit_codes_and_signals() {
    let env = Env::new();
    let o = env.sh("box", "echo out; echo err >&2; exit 3");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert!(stderr(&o).contains("err\n"));
    assert_eq!(
        env.sh("box", "kill -9 $$").status.code(),
        Some(137),
        "SIGKILL is 128+9"
    );
    assert_eq!(env.sh("box", "kill -TERM $$").status.code(), Some(143));
    let o = env.islo(&["use", "box", "--", "definitely-not-a-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("command not found"));
    // PID 1 is the agent; it reaps orphans.
    let o = env.sh("box", "cat /proc/1/cmdline | tr '\\0' ' '; (sleep 0.1 &) ; sleep 0.3; ps -o stat | grep -c Z || true");
    assert!(
        stdout(&o).starts_with("/.islo/islo-agent"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).trim_end().ends_with('0'),
        "zombies left: {}",
        stdout(&o)
    );
}

#[test]
fn a_command_that_cannot_start_is_127_while_orphans_run() {
    // An orphan keeps the agent's reaper waiting, which once raced Command::spawn for the
    // child whose exec failed: the agent's thread panicked and the exec ended without a code.
    let env = Env::new();
    let bg = "sleep 300 </dev/null >/dev/null 2>&1 &";
    assert!(env.sh("orphans", bg).status.success());
    for _ in 0..15 {
        let o = env.islo(&["use", "orphans", "--", "no-such-command"]);
        assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
        assert!(stderr(&o).contains("command not found"), "{}", stderr(&o));
    }
    assert_eq!(env.sh("orphans", "exit 5").status.code(), Some(5));
}

#[test]
fn env_workdir_and_user() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "cfg",
        "-i",
        &env.busybox(),
        "-e",
        "GREETING=hi there",
        "--workdir",
        "proj",
        "--",
        "sh",
        "-c",
        "echo \"$GREETING|$(pwd)|$(id -un)|$HOME|$(hostname)\"",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi there|/workspace/proj|islo|/home/islo|cfg\n");
    let o = env.islo(&[
        "use",
        "cfg",
        "--run-as-user",
        "root",
        "--workdir",
        "/tmp",
        "--",
        "sh",
        "-c",
        "id -u; pwd",
    ]);
    assert_eq!(stdout(&o), "0\n/tmp\n", "{}", stderr(&o));
    // /workspace belongs to the sandbox user.
    let o = env.sh("cfg", "stat -c %U /workspace");
    assert_eq!(stdout(&o), "islo\n");
    let o = env.islo(&["use", "cfg", "-e", "NOEQUALS", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "bad -e is a usage error");
}

#[test]
fn stop_then_use_keeps_files_and_rm_leaves_nothing() {
    let env = Env::new();
    assert!(
        env.sh(
            "keep",
            "echo precious > /workspace/f; sleep 1000 >/dev/null 2>&1 &"
        )
        .status
        .success()
    );
    let id = env.id_of("keep");
    env.ok(&["stop", "keep"]);
    let ls = env.ok(&["ls"]);
    assert!(ls.contains("Stopped"), "{ls}");
    let o = env.sh("keep", "cat /workspace/f; pidof sleep || echo no-sleep");
    assert_eq!(
        stdout(&o),
        "precious\nno-sleep\n",
        "stop kills every process; files survive: {}",
        stderr(&o)
    );

    let o = env.islo(&["rm", "keep"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "rm without -f and without a TTY refuses"
    );
    assert!(stderr(&o).contains("-f"));
    env.ok(&["rm", "keep", "-f"]);
    assert_no_trace(&env, &id);
    let json = env.ok(&["ls", "-o", "json"]);
    assert_eq!(json.trim(), "[]");
}

#[test]
fn unknown_sandbox_exits_3() {
    let env = Env::new();
    for args in [
        &["stop", "ghost", "-f"][..],
        &["rm", "ghost", "-f"],
        &["status", "ghost"],
    ] {
        let o = env.islo(args);
        assert_eq!(o.status.code(), Some(3), "islo {args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("ghost"), "{}", stderr(&o));
    }
}

#[test]
fn islod_restart_readopts_running_sandboxes() {
    let env = Env::new();
    assert!(
        env.sh(
            "live",
            "echo before > /tmp/mem; sleep 1000 >/dev/null 2>&1 &"
        )
        .status
        .success()
    );
    let first = env.islod_pid().unwrap();
    env.stop_islod();
    // The next command starts a new islod, which re-adopts the sandbox: its process still runs.
    let o = env.sh("live", "cat /tmp/mem; pidof sleep | wc -w");
    assert_eq!(stdout(&o), "before\n1\n", "{}", stderr(&o));
    assert_ne!(env.islod_pid().unwrap(), first);
    assert!(env.ok(&["ls"]).contains("Running"));
}

#[test]
fn sandbox_that_died_while_islod_was_down_is_marked_stopped() {
    let env = Env::new();
    assert!(env.sh("dies", "echo data > /workspace/d").status.success());
    let id = env.id_of("dies");
    env.stop_islod();
    let root = env.state().join("runtime");
    let kill = std::process::Command::new("crun")
        .arg("--root")
        .arg(&root)
        .args(["kill", &id, "KILL"])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = env.ok(&["status", "dies"]);
    assert!(
        status.contains("Status: Stopped") && status.contains("Reason:"),
        "{status}"
    );
    // …and `islo use` starts it again with its files.
    assert_eq!(stdout(&env.sh("dies", "cat /workspace/d")), "data\n");
}

#[test]
fn generated_names_and_scratch_images() {
    let env = Env::new();
    let scratch = format!("{}/islo-test/scratch:latest", env.registry);
    let o = env.islo(&[
        "use",
        "-i",
        &scratch,
        "--",
        "/busybox",
        "echo",
        "from scratch",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from scratch\n");
    assert!(
        stderr(&o).contains("Created sandbox "),
        "a generated name is announced: {}",
        stderr(&o)
    );
    let json = env.ok(&["ls", "-o", "json"]);
    let items: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "running");
}

#[test]
fn default_image_is_python_through_the_mirror() {
    let env = Env::new();
    let o = env.islo(&[
        "use",
        "demo",
        "--",
        "python3",
        "-c",
        "print('hello from the sandbox')",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello from the sandbox\n");
    let st = env.ok(&["status", "demo"]);
    assert!(
        st.contains("Image: python:3.12-slim") && st.contains("Memory: 2Gi"),
        "{st}"
    );
}

#[test]
fn interrupting_the_cli_kills_the_remote_command() {
    let env = Env::new();
    assert!(env.sh("intr", "true").status.success());
    let mut child = env
        .islo_cmd()
        .args(["use", "intr", "--", "sleep", "300"])
        .spawn()
        .unwrap();
    let seen = |env: &Env| {
        stdout(&env.sh("intr", "pidof sleep || echo none"))
            .trim()
            .to_string()
    };
    let mut running = false;
    for _ in 0..50 {
        if seen(&env) != "none" {
            running = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(running, "the remote sleep never started");
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut gone = false;
    for _ in 0..50 {
        if seen(&env) == "none" {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "the remote command outlived the interrupted CLI");
}

#[test]
fn pulls_show_progress_on_a_terminal() {
    let env = Env::new();
    // `script` gives the CLI a real terminal.
    let cmd = format!(
        "{} use tty -i {} -- echo done",
        env!("CARGO_BIN_EXE_islo"),
        env.busybox()
    );
    let o = env
        .islo_cmd_program("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("done"), "{out}");
    assert!(
        out.contains('[') && out.contains("B/"),
        "no progress bar on a terminal: {out:?}"
    );
    assert!(out.contains("Created sandbox tty"), "{out}");
}

#[test]
fn standard_input_is_forwarded_byte_exact() {
    use std::io::Write;
    use std::process::Stdio;
    let env = Env::new();
    assert!(env.sh("pipe", "true").status.success());
    // 8 MB of every byte value, through `cat` and back.
    let data: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut child = env
        .islo_cmd()
        .args(["use", "pipe", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stdout == data,
        "stdin did not round-trip ({} bytes back)",
        o.stdout.len()
    );
    // The end of input reaches the command; stderr stays apart.
    let mut child = env
        .islo_cmd()
        .args([
            "use",
            "pipe",
            "--",
            "sh",
            "-c",
            "wc -l; echo to-stderr >&2; exit 6",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(stdout(&o).trim(), "3");
    assert_eq!(stderr(&o), "to-stderr\n");
}

#[test]
fn general_status_shows_server_auth_config_and_tools() {
    let env = Env::new();
    std::fs::write(env.dir.path().join("islo.yaml"), "sandbox: from-yaml\n").unwrap();
    let out = env.ok(&["status"]);
    assert!(
        out.contains("Server: unix:") && out.contains("runtime crun"),
        "{out}"
    );
    assert!(out.contains("Auth: authenticated (tenant local)"), "{out}");
    assert!(
        out.contains("Config: islo.yaml (sandbox: from-yaml)"),
        "{out}"
    );
    assert!(out.contains("crun: /"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(json["auth"]["authenticated"], true);
    assert_eq!(json["config"]["sandbox"], "from-yaml");
    // `sandbox:` in islo.yaml names the sandbox `islo use` creates.
    let o = env.islo(&["use", "-i", &env.busybox(), "--", "hostname"]);
    assert_eq!(stdout(&o), "from-yaml\n", "{}", stderr(&o));
}
