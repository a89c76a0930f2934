//! islod killed (SIGKILL) at chosen points inside each operation, through `ISLOD_FAULT`, and
//! what the restart makes of it: nothing that existed is lost, nothing half-made is left on
//! the host, and the user is told what happened.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Env, agent_pid, assert_no_trace, stderr, stdout};

/// Run islo against a fresh islod armed to kill itself at `fault`; islod must have died.
fn crash(env: &Env, fault: &str, args: &[&str]) -> Output {
    env.stop_islod();
    let o = env
        .islo_cmd()
        .env("ISLOD_FAULT", fault)
        .args(args)
        .output()
        .unwrap();
    let pid = env.islod_pid().expect("islod started");
    wait_gone(pid);
    let log = std::fs::read_to_string(env.state().join("islod.log")).unwrap_or_default();
    assert!(
        log.contains(&format!("fault point {}", fault.split(':').next().unwrap())),
        "islod did not reach {fault}: {log}"
    );
    o
}

fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "islod {pid} still runs");
}

/// Any of its threads still exists. The main thread of a killed process becomes a zombie
/// before the others have gone, and until the last one has, its descriptors (the API socket,
/// the state lock) are still open: a client could still connect to the dying server.
fn alive(pid: i32) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    })
}

fn status_json(env: &Env, name: &str) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["status", name, "-o", "json"])).unwrap()
}

fn names(env: &Env) -> Vec<String> {
    let v: Vec<serde_json::Value> = serde_json::from_str(&env.ok(&["ls", "-o", "json"])).unwrap();
    v.iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn islod_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_islo")).with_file_name("islod")
}

#[test]
fn a_crash_while_a_stopped_sandbox_starts_again_keeps_it_and_its_log() {
    let env = Env::new();
    assert!(env.sh("keep", "echo kept > /workspace/f").status.success());
    env.ok(&["stop", "keep"]);
    let o = crash(&env, "start.started", &["use", "keep", "--", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("islod stopped while handling this request"),
        "{}",
        stderr(&o)
    );
    let s = status_json(&env, "keep");
    assert_eq!(s["status"], "stopped", "{s}");
    assert!(
        s["status_reason"].as_str().unwrap().contains("starting"),
        "{s}"
    );
    assert_eq!(stdout(&env.sh("keep", "cat /workspace/f")), "kept\n");
    let execs: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["logs", "keep", "--type", "exec", "-o", "json"])).unwrap();
    assert!(execs.len() >= 2, "the exec history survives: {execs:?}");
}

#[test]
fn interrupted_creates_are_undone_and_deletes_and_stops_finished() {
    let env = Env::new();
    // A create cut after the sandbox was built: it never existed for the user.
    let o = crash(
        &env,
        "create.provisioned",
        &["use", "half", "-i", &env.busybox(), "--", "true"],
    );
    assert!(!o.status.success());
    // What the crash left on the host, before the restart undoes it.
    let half: Vec<String> = std::fs::read_dir(env.state().join("sandboxes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(half.len(), 1, "the sandbox was built: {half:?}");
    assert!(!names(&env).contains(&"half".to_string()));
    assert_no_trace(&env, &half[0]);

    // A delete cut after the host side went: finished, not brought back.
    assert!(env.sh("gone", "true").status.success());
    let id = env.id_of("gone");
    let o = crash(&env, "delete.destroyed", &["rm", "gone", "-f"]);
    assert!(!o.status.success());
    assert!(!names(&env).contains(&"gone".to_string()));
    assert_no_trace(&env, &id);

    // A stop cut before the runtime was told: finished.
    assert!(env.sh("halt", "true").status.success());
    crash(&env, "stop.recorded", &["stop", "halt"]);
    assert_eq!(status_json(&env, "halt")["status"], "stopped");
    assert_eq!(stdout(&env.sh("halt", "echo again")), "again\n");
}

#[test]
fn a_crash_during_a_save_thaws_the_sandbox_and_cleans_the_scratch() {
    let env = Env::new();
    let script = "setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i > /tmp/tick; \
                  sleep 0.05; done' </dev/null >/dev/null 2>&1 &";
    assert!(env.sh("frozen", script).status.success());
    let o = crash(
        &env,
        "save.writing",
        &["snapshot", "save", "frozen", "--name", "cut"],
    );
    assert!(!o.status.success());
    let s = status_json(&env, "frozen");
    assert_eq!(s["status"], "running", "not killed: {s}");
    let tick = |env: &Env| {
        let o = env.sh("frozen", "cat /tmp/tick");
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let first = tick(&env);
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(tick(&env), first, "its processes run again");
    let scratch = std::fs::read_dir(env.state().join("images/tmp"))
        .unwrap()
        .count();
    assert_eq!(scratch, 0, "the save's scratch file is removed");
    let snaps = env.ok(&["snapshot", "ls", "-o", "json"]);
    assert!(snaps.contains("\"failed\""), "{snaps}");
    // A save after the restart works.
    env.ok(&["snapshot", "save", "frozen", "--name", "whole"]);
}

#[test]
fn an_interrupted_upload_leaves_the_old_file() {
    let env = Env::new();
    assert!(env.sh("up", "true").status.success());
    let (old, new) = (
        env.dir.path().join("old.txt"),
        env.dir.path().join("new.bin"),
    );
    std::fs::write(&old, "the good copy\n").unwrap();
    std::fs::write(&new, vec![b'x'; 4 << 20]).unwrap();
    env.ok(&["cp", old.to_str().unwrap(), "up:/workspace/f.txt"]);
    let o = crash(
        &env,
        "upload.received",
        &["cp", new.to_str().unwrap(), "up:/workspace/f.txt"],
    );
    assert!(!o.status.success());
    let o = env.sh("up", "cat /workspace/f.txt");
    let log = std::fs::read_to_string(env.state().join("islod.log")).unwrap_or_default();
    assert_eq!(stdout(&o), "the good copy\n", "{}\n{log}", stderr(&o));
    assert_eq!(stdout(&env.sh("up", "ls -A /workspace")), "f.txt\n");
}

#[test]
fn output_shown_before_a_crash_is_in_the_log_which_says_it_was_cut() {
    let env = Env::new();
    assert!(env.sh("chatty", "true").status.success());
    let o = crash(
        &env,
        "audit.queued:300",
        &["use", "chatty", "--", "seq", "1", "2000000"],
    );
    assert!(!o.status.success());
    let shown = stdout(&o);
    assert!(!shown.is_empty(), "output was shown before the crash");
    assert!(
        stderr(&o).contains("islod stopped while handling this request"),
        "{}",
        stderr(&o)
    );
    let execs: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["logs", "chatty", "--type", "exec", "-o", "json"])).unwrap();
    let id = execs[0]["exec_id"].as_str().unwrap();
    let logged = env.islo(&["logs", "chatty", id]);
    let recorded = stdout(&logged);
    assert!(
        recorded.starts_with(&shown),
        "all {} bytes shown are recorded (recorded {})",
        shown.len(),
        recorded.len()
    );
    assert!(
        stderr(&logged).contains("islod stopped while this ran"),
        "{}",
        stderr(&logged)
    );
}

#[test]
fn one_islod_per_state_directory_and_racing_clients_share_it() {
    let env = Env::new();
    assert!(env.sh("net", "true").status.success());
    env.stop_islod();
    let racers: Vec<_> = (0..6)
        .map(|_| {
            env.islo_cmd()
                .args(["ls", "-o", "json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in racers {
        let o = r.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let pid = env.islod_pid().unwrap();
    // A second islod on the same state exits at once, naming the first.
    let o = env
        .islo_cmd_program(islod_binary().to_str().unwrap())
        .arg("--state-dir")
        .arg(env.state())
        .args(["serve", "--socket"])
        .arg(env.dir.path().join("second.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!("pid {pid}")), "{}", stderr(&o));
    assert_eq!(env.islod_pid(), Some(pid));
    // The firewall sends sandboxes to ports only root can bind, so while islod is down no
    // other process can stand in for the gateway.
    let log = std::fs::read_to_string(env.state().join("islod.log")).unwrap();
    let ready = log
        .rfind("gateway ready")
        .expect("the gateway's start is logged");
    let at = ready + log[ready..].find("islo_").expect("with its table");
    let table: String = log[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let rules = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
    let ports: Vec<u16> = rules
        .split("redirect to :")
        .skip(1)
        .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(!ports.is_empty(), "{rules}");
    assert!(ports.iter().all(|p| *p < 1024), "{ports:?}");
    // The firewall sends the sandbox to the live gateway: DNS answers.
    let o = env.sh("net", "nslookup example.com >/dev/null && echo resolved");
    assert_eq!(stdout(&o), "resolved\n", "{}", stderr(&o));
}

#[test]
fn concurrent_uses_of_a_new_name_all_end_in_the_same_sandbox() {
    let env = Env::new();
    let image = env.busybox();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            env.islo_cmd()
                .args([
                    "use",
                    "shared",
                    "-i",
                    &image,
                    "--",
                    "echo",
                    &format!("racer {i}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, r) in racers.into_iter().enumerate() {
        let o = r.wait_with_output().unwrap();
        assert!(o.status.success(), "racer {i}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("racer {i}\n"));
    }
    assert_eq!(names(&env), ["shared"]);
}

/// Run `args`, killing it if it has not ended within `limit`: the check is that it ends.
fn ends_within(env: &Env, limit: Duration, args: &[&str]) -> Output {
    let mut c = env
        .islo_cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while c.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "islo {args:?} hangs");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.wait_with_output().unwrap()
}

#[test]
fn a_stopped_agent_is_an_error_not_a_hang_and_not_killed_at_restart() {
    let env = Env::new();
    assert!(env.sh("wedged", "true").status.success());
    let id = env.id_of("wedged");
    let pid = agent_pid(&id);
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    signal("-STOP");
    let o = ends_within(
        &env,
        Duration::from_secs(60),
        &["use", "wedged", "--", "true"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("did not answer"), "{}", stderr(&o));
    // A restart while it is stopped adopts it rather than killing it.
    env.stop_islod();
    assert_eq!(status_json(&env, "wedged")["status"], "running");
    signal("-CONT");
    assert_eq!(stdout(&env.sh("wedged", "echo back")), "back\n");
    signal("-STOP");
    let o = ends_within(&env, Duration::from_secs(60), &["stop", "wedged"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A killed agent (PID 1) is hostile.rs's a_dead_agent_is_noticed_and_the_sandbox_starts_again.
}

#[test]
fn a_damaged_database_stops_islod_and_points_at_the_copy() {
    let env = Env::new();
    assert!(env.sh("db", "true").status.success());
    env.stop_islod();
    env.ok(&["ls"]); // a second start copies what the first made
    env.stop_islod();
    let db = env.state().join("islod.db");
    let copy = env.state().join("islod.db.backup");
    assert!(copy.exists(), "a copy is made at each start");
    std::fs::write(&db, vec![0x5a; 1 << 16]).unwrap();
    let _ = std::fs::remove_file(env.state().join("islod.db-wal"));
    let o = env.islo(&["ls"]);
    // The copy goes back before anything is judged, so that a failure here still lets the
    // sandbox be removed when the test ends.
    std::fs::copy(&copy, &db).unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("damaged") && err.contains("islod.db.backup"),
        "{err}"
    );
    let o = env.islo(&["ls", "-o", "json"]);
    let log = std::fs::read_to_string(env.state().join("islod.log")).unwrap();
    assert!(o.status.success(), "{}\n{log}", stderr(&o));
    assert!(stdout(&o).contains("\"db\""), "{}", stdout(&o));
}

#[test]
fn a_closed_pipe_ends_islo_quietly() {
    let env = Env::new();
    assert!(env.sh("piped", "true").status.success());
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = env
        .islo_cmd()
        .args(["status", "piped"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(141));
    assert_eq!(stderr(&o), "", "no panic, no message");
}

#[test]
fn a_crash_after_a_checkpoint_or_a_restore_loses_no_process() {
    let env = Env::new();
    let counter =
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) >/dev/null 2>&1 &";
    assert!(env.sh("nap", counter).status.success());
    // Killed after the processes were saved, before the pause was recorded: found paused.
    let o = crash(&env, "pause.dumped", &["pause", "nap"]);
    assert!(!o.status.success());
    assert_eq!(status_json(&env, "nap")["status"], "paused");
    // Killed after they were restored, before the resume was recorded: found running.
    let o = crash(&env, "resume.restored", &["resume", "nap"]);
    assert!(!o.status.success());
    assert_eq!(status_json(&env, "nap")["status"], "running");
    let before: u64 = stdout(&env.sh("nap", "cat /tmp/count"))
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let after: u64 = stdout(&env.sh("nap", "cat /tmp/count"))
        .trim()
        .parse()
        .unwrap();
    assert!(after > before, "the counter runs: {before} then {after}");
}
