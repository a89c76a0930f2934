//! Pause and resume with memory (CRIU), through the real CLI: what runs in a sandbox is where
//! it was after a pause, an islod restart and a resume.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, Tmux, stderr, stdout};

fn status(env: &Env, name: &str) -> String {
    let out = env.ok(&["status", name, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["status"].as_str().unwrap().to_string()
}

/// No process of sandbox `id` on the host and no cgroup holding its memory.
fn nothing_runs(id: &str) {
    for ctrl in ["memory", "pids", "cpu"] {
        let p = format!("/sys/fs/cgroup/{ctrl}/islo/{id}");
        assert!(!std::path::Path::new(&p).exists(), "{p} while paused");
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cg = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        assert!(
            !cg.contains(id) || cmd.is_empty(),
            "process {:?} ({}) of a paused sandbox: {cg}",
            e.file_name(),
            String::from_utf8_lossy(&cmd)
        );
    }
}

fn counter(env: &Env, name: &str) -> u64 {
    let o = env.islo(&["use", name, "--", "cat", "/tmp/count"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().parse().unwrap()
}

#[test]
fn a_shell_a_python_repl_and_a_counter_survive_pause_an_islod_restart_and_resume() {
    let env = Env::new();
    let image = env.debian();
    // A shell session with a variable, a Python REPL holding an object, a background counter.
    let sh = Tmux::start(&env, &["use", "pz", "-i", &image, "-s", "shell"], 100, 30);
    sh.wait_for("detach with");
    sh.line("KEPT=shell-$((6*7)); echo set-$KEPT");
    sh.wait_for("set-shell-42");
    sh.keys(&["C-p", "C-q"]);
    sh.wait_for("CLI-EXIT=0");
    let py = Tmux::start(&env, &["use", "pz", "-s", "repl"], 100, 30);
    py.wait_for("detach with");
    py.line("python3 -q");
    py.wait_for(">>>");
    py.line("obj = {'answer': 6 * 7}");
    py.keys(&["C-p", "C-q"]);
    py.wait_for("CLI-EXIT=0");
    let o = env.sh(
        "pz",
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) >/dev/null 2>&1 &",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::thread::sleep(std::time::Duration::from_millis(600));
    let before = counter(&env, "pz");
    let id = env.id_of("pz");

    env.ok(&["pause", "pz"]);
    assert_eq!(status(&env, "pz"), "paused");
    let listed = env.ok(&["ls", "--status", "paused", "-o", "json"]);
    assert!(listed.contains("\"pz\""), "{listed}");
    nothing_runs(&id);
    // Pausing again is refused with the status.
    let again = env.islo(&["pause", "pz"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("paused"), "{}", stderr(&again));

    env.stop_islod();
    env.ok(&["resume", "pz"]);
    assert_eq!(status(&env, "pz"), "running");
    let after = counter(&env, "pz");
    assert!(
        after >= before && after < before + 20,
        "the counter went on from {before}: {after}"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(counter(&env, "pz") > after, "the counter runs again");

    let sh = Tmux::start(&env, &["use", "pz", "-s", "shell"], 100, 30);
    sh.wait_for("detach with");
    sh.line("echo kept-$KEPT");
    sh.wait_for("kept-shell-42");
    let py = Tmux::start(&env, &["use", "pz", "-s", "repl"], 100, 30);
    py.wait_for("detach with");
    py.line("print('obj', obj['answer'])");
    py.wait_for("obj 42");

    // A second pause of the restored sandbox works as the first.
    env.ok(&["pause", "pz"]);
    env.ok(&["resume", "pz"]);
    assert!(counter(&env, "pz") > after);
}

#[test]
fn commands_resume_a_paused_sandbox_and_stop_and_rm_work_on_one() {
    let env = Env::new();
    assert!(env.sh("pq", "echo data > ~/file").status.success());
    // Only running sandboxes pause; only paused or stopped ones resume.
    env.ok(&["stop", "pq", "-f"]);
    let o = env.islo(&["pause", "pq"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
    assert!(env.sh("pq", "true").status.success());

    // `islo use` resumes a paused sandbox (without a terminal it does not ask).
    env.ok(&["pause", "pq"]);
    let o = env.sh("pq", "cat ~/file");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "data\n");
    assert_eq!(status(&env, "pq"), "running");

    // A stop drops the paused processes and keeps the files; a start is a fresh boot.
    env.ok(&["pause", "pq"]);
    env.ok(&["stop", "pq", "-f"]);
    assert_eq!(status(&env, "pq"), "stopped");
    let o = env.sh("pq", "cat ~/file");
    assert_eq!(stdout(&o), "data\n", "{}", stderr(&o));

    env.ok(&["pause", "pq"]);
    let id = env.id_of("pq");
    env.ok(&["rm", "pq", "-f"]);
    common::assert_no_trace(&env, &id);
}
