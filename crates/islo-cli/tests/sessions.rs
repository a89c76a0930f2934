//! Interactive shells and persistent sessions through the real CLI in a real terminal (tmux).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, Tmux, stdout};

fn shell(env: &Env, name: &str, extra: &[&str], cols: u16, rows: u16) -> Tmux {
    let image = env.busybox();
    let mut args = vec!["use", name, "-i", &image];
    args.extend(extra);
    Tmux::start(env, &args, cols, rows)
}

#[test]
fn detach_reattach_replays_and_resizes() {
    let env = Env::new();
    let t = shell(&env, "sh1", &[], 100, 30);
    t.wait_for("detach with Ctrl-P Ctrl-Q");
    t.line("echo marker-$((40+2)); stty size");
    t.wait_for("marker-42");
    t.wait_for("30 100");
    t.resize(90, 20);
    t.line("stty size");
    t.wait_for("20 90");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("CLI-EXIT=0");
    let listed = env.ok(&["use", "sh1", "--list-sessions"]);
    assert!(
        listed.contains("main") && listed.contains("disconnected"),
        "{listed}"
    );

    // A new terminal attaches to the same shell and sees the earlier screen first.
    let t2 = shell(&env, "sh1", &[], 120, 40);
    t2.wait_for("marker-42");
    t2.line("stty size; exit 4");
    t2.wait_for("40 120");
    t2.wait_for("CLI-EXIT=4");
    let json = env.ok(&["use", "sh1", "--list-sessions", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["status"], "dead", "{json}");
}

#[test]
fn ctrl_c_interrupts_the_job_not_the_shell_and_two_clients_share() {
    let env = Env::new();
    let a = shell(&env, "sh2", &["-s", "pair"], 100, 30);
    a.wait_for("detach with");
    let b = shell(&env, "sh2", &["-s", "pair"], 100, 30);
    b.wait_for("detach with");
    a.line("sleep 100");
    std::thread::sleep(std::time::Duration::from_millis(300));
    a.keys(&["C-c"]);
    a.line("echo alive-$((2*21))");
    a.wait_for("alive-42");
    b.wait_for("alive-42");
    b.line("echo from-b-$((1+1))");
    a.wait_for("from-b-2");
    let listed = env.ok(&["use", "sh2", "--list-sessions", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        (v[0]["name"].as_str(), v[0]["clients"].as_u64()),
        (Some("pair"), Some(2)),
        "{listed}"
    );
}

#[test]
fn sessions_survive_an_islod_restart_and_the_terminal_is_restored() {
    let env = Env::new();
    let t = shell(&env, "sh3", &[], 100, 30);
    t.wait_for("detach with");
    t.line("export KEPT=yes-$((3*3))");
    // islod goes away mid-session: the CLI ends with an error, the terminal is restored.
    env.stop_islod();
    let screen = t.wait_for("CLI-EXIT=");
    assert!(screen.contains("CLI-EXIT=125"), "{screen}");
    let before = std::fs::read_to_string(env.dir.path().join("stty-before")).unwrap();
    for _ in 0..50 {
        if env.dir.path().join("stty-after").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let after = std::fs::read_to_string(env.dir.path().join("stty-after")).unwrap();
    assert_eq!(before, after, "terminal settings not restored");

    // The shell lives in the sandbox, not in islod: a new islod finds it, state intact.
    let t2 = shell(&env, "sh3", &[], 100, 30);
    t2.wait_for("detach with");
    t2.line("echo kept=$KEPT");
    t2.wait_for("kept=yes-9");
}

#[test]
fn commands_get_a_terminal_when_stdin_is_one() {
    let env = Env::new();
    assert!(env.sh("sh4", "true").status.success());
    let t = Tmux::start(
        &env,
        &["use", "sh4", "--", "sh", "-c", "tty; stty size; exit 3"],
        77,
        22,
    );
    let screen = t.wait_for("CLI-EXIT=3");
    assert!(
        screen.contains("/dev/pts/") && screen.contains("22 77"),
        "{screen}"
    );
    // A command that cannot start says so on the terminal too, and ends 127.
    let t = Tmux::start(&env, &["use", "sh4", "--", "no-such-cmd"], 77, 22);
    let screen = t.wait_for("CLI-EXIT=127");
    assert!(
        screen.contains("islo: no-such-cmd: command not found"),
        "{screen}"
    );
    // Without a terminal the same command gets pipes.
    let o = env.islo(&["use", "sh4", "--", "sh", "-c", "tty; exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("not a tty"), "{}", stdout(&o));
}

#[test]
fn new_sessions_and_errors() {
    let env = Env::new();
    let t = shell(&env, "sh5", &["--new-session"], 100, 30);
    t.wait_for("Attached to session session-");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("CLI-EXIT=0");
    let listed = env.ok(&["use", "sh5", "--list-sessions"]);
    assert!(
        listed.starts_with("NAME") && listed.contains("session-"),
        "{listed}"
    );
    // No terminal, no shell.
    let o = env.islo(&["use", "sh5"]);
    assert_eq!(o.status.code(), Some(2));
    let o = env.islo(&["use", "ghost", "--list-sessions"]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn stopping_a_sandbox_ends_its_sessions() {
    let env = Env::new();
    let t = shell(&env, "sh6", &["-s", "work"], 100, 30);
    t.wait_for("detach with");
    t.line("echo ready-$((1+1))");
    t.wait_for("ready-2");
    env.ok(&["stop", "sh6"]);
    t.wait_for("CLI-EXIT=");
    let json = env.ok(&["use", "sh6", "--list-sessions", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v[0]["name"].as_str(), v[0]["status"].as_str()),
        (Some("work"), Some("dead")),
        "{json}"
    );
    // Using it again starts the sandbox and a fresh shell in that session.
    let t2 = shell(&env, "sh6", &["-s", "work"], 100, 30);
    t2.wait_for("detach with");
    t2.line("echo again-$((2+2))");
    t2.wait_for("again-4");
    let json = env.ok(&["use", "sh6", "--list-sessions", "-o", "json"]);
    assert!(json.contains("\"connected\""), "{json}");
}
