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
    env.ok(&["use", "pz", "-i", &image, "--", "true"]);
    // A shell session with a variable, a Python REPL holding an object, a background counter.
    let sh = Tmux::start(&env, &["use", "pz", "-s", "shell"], 100, 30);
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
fn only_running_sandboxes_pause_and_stop_and_rm_work_on_a_paused_one() {
    let env = Env::new();
    assert!(env.sh("pq", "echo data > ~/file").status.success());
    env.ok(&["stop", "pq", "-f"]);
    let o = env.islo(&["pause", "pq"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
    env.ok(&["resume", "pq"]);

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

/// Wait until `f` holds (polling), or fail saying `what`.
fn eventually(what: &str, secs: u64, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within {secs} s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn activity_resumes_a_sandbox_whose_policy_says_so_and_is_refused_otherwise() {
    let env = Env::new();
    let b = env.busybox();
    let mk = "mkdir -p /tmp/www && echo served > /tmp/www/index.html && httpd -p 127.0.0.1:7000 -h /tmp/www";
    env.ok(&[
        "use",
        "wake",
        "-i",
        &b,
        "--auto-resume",
        "on_activity",
        "--",
        "sh",
        "-c",
        mk,
    ]);
    let json = env.ok(&["status", "wake", "-o", "json"]);
    assert!(json.contains("\"auto_resume\": \"on_activity\""), "{json}");

    // A command.
    env.ok(&["pause", "wake"]);
    let o = env.islo(&["use", "wake", "--", "echo", "via-exec"]);
    assert_eq!(stdout(&o), "via-exec\n", "{}", stderr(&o));
    assert_eq!(status(&env, "wake"), "running");

    // A terminal.
    env.ok(&["pause", "wake"]);
    let t = Tmux::start(&env, &["use", "wake"], 100, 30);
    t.wait_for("detach with");
    t.line("echo via-attach-$((1+1))");
    t.wait_for("via-attach-2");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("CLI-EXIT=0");

    // SSH.
    env.ok(&["ssh", "--setup"]);
    env.ok(&["pause", "wake"]);
    let o = env.islo(&["ssh", "wake", "--", "echo", "via-ssh"]);
    assert_eq!(stdout(&o), "via-ssh\n", "{}", stderr(&o));

    // A port-forward: the server restored with the sandbox answers.
    env.ok(&["pause", "wake"]);
    let mut pf = env
        .islo_cmd()
        .args(["pf", "wake", "0:7000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(pf.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let port: u16 = first
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    std::io::Write::write_all(&mut c, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut c, &mut body).unwrap();
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(body.contains("served"), "{body}");

    // Without the policy: refused, saying how to resume.
    env.ok(&["use", "sleepy", "-i", &b, "--", "true"]);
    env.ok(&["pause", "sleepy"]);
    let o = env.islo(&["use", "sleepy", "--", "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("islo resume sleepy"), "{}", stderr(&o));
    let o = env.islo(&[
        "api",
        "/sandboxes/sleepy/exec",
        "-X",
        "POST",
        "-d",
        r#"{"command":["true"]}"#,
    ]);
    assert!(!o.status.success());
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        said.contains("paused") && said.contains("islo resume"),
        "{said}"
    );
    assert_eq!(status(&env, "sleepy"), "paused");
}

#[test]
fn idle_sandboxes_pause_across_an_islod_restart_and_old_ones_are_deleted() {
    let env = Env::new();
    let b = env.busybox();
    env.ok(&[
        "use",
        "idle",
        "-i",
        &b,
        "--pause-after-idle",
        "3s",
        "--",
        "true",
    ]);
    let json = env.ok(&["status", "idle", "-o", "json"]);
    assert!(json.contains("\"pause_after_idle\": 3"), "{json}");
    // islod is away for the idle period: the next one pauses it at once.
    env.stop_islod();
    std::thread::sleep(std::time::Duration::from_secs(4));
    env.ok(&["ls"]);
    eventually("an idle sandbox pauses", 10, || {
        status(&env, "idle") == "paused"
    });
    let json = env.ok(&["status", "idle", "-o", "json"]);
    assert!(json.contains("pause_after_idle"), "the reason: {json}");
    // A resume is activity: the idle period starts again from it, however long it slept.
    std::thread::sleep(std::time::Duration::from_secs(4));
    env.ok(&["resume", "idle"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(status(&env, "idle"), "running", "paused again at once");

    // An open terminal is activity: it does not pause while one is attached.
    env.ok(&[
        "use",
        "busy",
        "-i",
        &b,
        "--pause-after-idle",
        "2s",
        "--",
        "true",
    ]);
    let t = Tmux::start(&env, &["use", "busy"], 100, 30);
    t.wait_for("detach with");
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(status(&env, "busy"), "running");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("CLI-EXIT=0");
    eventually("it pauses once the terminal is gone", 10, || {
        status(&env, "busy") == "paused"
    });

    env.ok(&[
        "use",
        "doomed",
        "-i",
        &b,
        "--delete-after",
        "3s",
        "--",
        "true",
    ]);
    eventually("a sandbox past delete_after is deleted", 15, || {
        env.islo(&["status", "doomed"]).status.code() == Some(3)
    });
}

#[test]
fn a_pause_that_cannot_be_written_leaves_the_sandbox_running() {
    let env = Env::new();
    let b = env.busybox();
    env.ok(&["use", "full", "-i", &b, "--disk", "1", "--", "true"]);
    let o = env.sh(
        "full",
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) >/dev/null 2>&1 &",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Fill its disk (root, so the reserve goes too).
    let _ = env.root_sh("full", "dd if=/dev/zero of=/fill bs=1M 2>/dev/null; sync");
    let o = env.islo(&["pause", "full"]);
    assert!(
        !o.status.success(),
        "a pause onto a full disk: {}",
        stdout(&o)
    );
    assert!(
        stderr(&o).to_lowercase().contains("space"),
        "{}",
        stderr(&o)
    );
    assert_eq!(status(&env, "full"), "running");
    let before = counter(&env, "full");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(counter(&env, "full") > before, "its processes run on");
    // Room again: the pause goes through, nothing half-saved in the way.
    assert!(env.root_sh("full", "rm /fill").status.success());
    env.ok(&["pause", "full"]);
    env.ok(&["resume", "full"]);
    assert!(counter(&env, "full") >= before);
}

#[test]
fn sandboxes_forked_from_a_memory_snapshot_start_running_and_go_their_own_ways() {
    let env = Env::new();
    let b = env.busybox();
    env.ok(&["use", "origin", "-i", &b, "--", "true"]);
    let o = env.sh(
        "origin",
        "(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) >/dev/null 2>&1 &",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::thread::sleep(std::time::Duration::from_millis(500));
    env.ok(&["snapshot", "save", "origin", "--name", "live", "--memory"]);
    let ls = env.ok(&["snapshot", "ls", "-o", "json"]);
    assert!(ls.contains("\"memory\": true"), "{ls}");
    // The origin runs on, reachable as before.
    assert!(counter(&env, "origin") > 0);

    let forks = ["fork-a", "fork-b", "fork-c"];
    for f in forks {
        env.ok(&["use", f, "--snapshot", "live", "--", "true"]);
    }
    let mut addrs = Vec::new();
    for f in forks {
        // Its own name and link; the counter it was forked with goes on.
        let o = env.sh(f, "hostname; ip -4 -o addr show eth0 | awk '{print $4}'");
        let out = stdout(&o);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(f), "{out}");
        addrs.push(lines.next().unwrap_or_default().to_string());
        assert!(counter(&env, f) >= 1);
        let ids = env.ok(&["status", f, "-o", "json"]);
        assert!(ids.contains("\"user_namespace\": true"), "{ids}");
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 3, "one address each: {addrs:?}");
    // What one fork does, the others do not see.
    assert!(env.sh("fork-a", "echo mine > /tmp/own").status.success());
    let o = env.sh("fork-b", "cat /tmp/own");
    assert!(!o.status.success(), "fork-b sees fork-a's file");
    // Forks pause and resume like any sandbox.
    env.ok(&["pause", "fork-c"]);
    env.ok(&["resume", "fork-c"]);
    assert!(counter(&env, "fork-c") >= 1);
    // Removed, a restored sandbox leaves nothing behind, its network namespace included.
    let id = env.id_of("fork-c");
    env.ok(&["rm", "fork-c", "-f"]);
    common::assert_no_trace(&env, &id);

    // Export carries the checkpoint; an import restores it only when told to trust it.
    let archive = env.dir.path().join("live.tar");
    let to = format!("oci-archive:{}", archive.display());
    env.ok(&["snapshot", "export", "live", "--to", &to]);
    let o = env.islo(&[
        "snapshot",
        "import",
        &to,
        "--name",
        "files-only",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("\"memory\""), "{}", stdout(&o));
    assert!(stderr(&o).contains("--trust-memory"), "{}", stderr(&o));
    let o = env.islo(&[
        "snapshot",
        "import",
        &to,
        "--name",
        "trusted",
        "--trust-memory",
        "-o",
        "json",
    ]);
    assert!(
        stdout(&o).contains("\"memory\": true"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    env.ok(&["use", "fork-i", "--snapshot", "trusted", "--", "true"]);
    assert!(counter(&env, "fork-i") >= 1, "the imported processes run");
    // Only a running sandbox's memory is saved.
    env.ok(&["stop", "origin", "-f"]);
    let o = env.islo(&["snapshot", "save", "origin", "--memory"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("running"), "{}", stderr(&o));
}

#[test]
fn a_restore_that_fails_leaves_the_sandbox_failed_with_its_files_for_a_plain_start() {
    let env = Env::new();
    assert!(env.sh("broken", "echo mine > ~/kept").status.success());
    env.ok(&["pause", "broken"]);
    // Damage the checkpoint on the sandbox's disk (unmounted while it is paused).
    let id = env.id_of("broken");
    let img = env.state().join("sandboxes").join(&id).join("disk.img");
    let mnt = env.dir.path().join("disk-mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mount.success());
    let mut damaged = 0;
    for e in std::fs::read_dir(mnt.join("checkpoint")).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("pages-") {
            std::fs::write(e.path(), b"").unwrap();
            damaged += 1;
        }
    }
    assert!(
        std::process::Command::new("umount")
            .arg(&mnt)
            .status()
            .unwrap()
            .success()
    );
    assert!(damaged > 0, "the checkpoint has page images");

    let o = env.islo(&["resume", "broken"]);
    assert!(!o.status.success(), "a damaged checkpoint restored");
    assert!(
        stderr(&o).contains("resuming sandbox broken failed"),
        "{}",
        stderr(&o)
    );
    let json = env.ok(&["status", "broken", "-o", "json"]);
    assert!(json.contains("\"status\": \"failed\""), "{json}");
    assert!(
        json.contains("islo stop broken"),
        "the reason says what to do: {json}"
    );
    // No process of it is left on the host.
    nothing_runs(&id);
    // What the reason says works: its files are there after a plain start.
    env.ok(&["stop", "broken", "-f"]);
    let o = env.sh("broken", "cat ~/kept");
    assert_eq!(stdout(&o), "mine\n", "{}", stderr(&o));
}
