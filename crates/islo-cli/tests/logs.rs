//! The audit log through the real CLI: every exec and terminal session is recorded and can be
//! read back in every form.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, Tmux, stderr, stdout};

fn sessions(env: &Env, sandbox: &str, kind: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&env.ok(&["logs", sandbox, "--type", kind, "-o", "json"])).unwrap()
}

#[test]
fn execs_are_recorded_and_read_back() {
    let mut env = Env::new();
    env.set("ISLOD_LOG_CAP_BYTES", "2000");
    assert_eq!(
        env.sh("lg", "echo one; sleep 0.2; echo two >&2; exit 3")
            .status
            .code(),
        Some(3)
    );
    assert!(
        env.islo(&["use", "lg", "--", "echo", "second"])
            .status
            .success()
    );

    let list = sessions(&env, "lg", "exec");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["command"], "echo second", "newest first");
    assert_eq!(
        (
            list[1]["exit_code"].as_i64(),
            list[1]["is_interactive"].as_bool()
        ),
        (Some(3), Some(false))
    );
    assert_eq!(list[1]["user"], "islo");
    let table = env.ok(&["logs", "lg", "--type", "exec"]);
    assert!(
        table.starts_with("ID") && table.contains("EXIT") && table.contains("echo second"),
        "{table}"
    );

    let id = list[1]["exec_id"].as_str().unwrap().to_string();
    let o = env.islo(&["logs", "lg", &id]);
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("one\n", "two\n")
    );
    assert_eq!(
        stdout(&env.islo(&["logs", "lg", &id, "--head", "1"])),
        "one\n"
    );
    let o = env.islo(&["logs", "lg", &id, "--tail", "1"]);
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("", "two\n"));
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["logs", "lg", &id, "-o", "json"])).unwrap();
    assert_eq!(json["logs"][0]["stream"], "stdout");
    assert_eq!(json["logs"][0]["seq"], 1);
    assert_eq!(sessions(&env, "lg", "exec").len(), env_since(&env, "1h"));
    assert_eq!(env_since(&env, "2099-01-01T00:00:00Z"), 0);

    // Unknown sessions and sandboxes exit 3 with a clear message.
    let o = env.islo(&["logs", "lg", "no-such-session"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no-such-session"), "{}", stderr(&o));
    assert_eq!(
        env.islo(&["logs", "ghost", "--type", "exec"]).status.code(),
        Some(3)
    );

    // The cap marks the cut.
    assert!(
        env.sh("lg", "head -c 5000 /dev/zero | tr '\\0' x")
            .status
            .success()
    );
    let big = &sessions(&env, "lg", "exec")[0];
    assert_eq!(big["truncated"], true);
    let o = env.islo(&["logs", "lg", big["exec_id"].as_str().unwrap()]);
    assert!(
        stderr(&o).contains("log cut after 2000 bytes") && stdout(&o).len() <= 2000,
        "{}",
        stderr(&o)
    );

    // Nothing is lost across an islod restart.
    env.stop_islod();
    assert_eq!(stdout(&env.islo(&["logs", "lg", &id])), "one\n");
}

fn env_since(env: &Env, since: &str) -> usize {
    let v: Vec<serde_json::Value> = serde_json::from_str(&env.ok(&[
        "logs", "lg", "--type", "exec", "--since", since, "-o", "json",
    ]))
    .unwrap();
    v.len()
}

#[test]
fn follow_streams_a_running_session() {
    let env = Env::new();
    assert!(env.sh("fl", "true").status.success());
    let mut child = env
        .islo_cmd()
        .args([
            "use",
            "fl",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3; do echo tick$i; sleep 0.4; done",
        ])
        .spawn()
        .unwrap();
    let mut id = None;
    for _ in 0..50 {
        let list = sessions(&env, "fl", "exec");
        if let Some(s) = list
            .iter()
            .find(|s| s["command"].as_str().unwrap_or("").contains("tick"))
        {
            id = Some(s["exec_id"].as_str().unwrap().to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let id = id.expect("the running exec is listed");
    let o = env.islo(&["logs", "fl", &id, "--follow"]);
    assert_eq!(stdout(&o), "tick1\ntick2\ntick3\n", "{}", stderr(&o));
    child.wait().unwrap();
}

#[test]
fn interactive_sessions_are_recorded_with_their_input() {
    let env = Env::new();
    let image = env.busybox();
    let t = Tmux::start(&env, &["use", "it", "-i", &image], 100, 30);
    t.wait_for("detach with");
    t.line("echo typed-$((20+22))");
    t.wait_for("typed-42");
    t.resize(120, 40);
    t.line("stty size");
    t.wait_for(" 120");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("CLI-EXIT=0");
    let list = sessions(&env, "it", "interactive");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["first_stdin_line"], "echo typed-$((20+22))");
    assert!(
        list[0]["command"]
            .as_str()
            .unwrap()
            .starts_with("[session main]"),
        "{list:?}"
    );
    let id = list[0]["exec_id"].as_str().unwrap();
    let o = env.islo(&["logs", "it", id]);
    assert!(stdout(&o).contains("typed-42"), "{}", stdout(&o));

    // The asciinema v2 recording replays it: a header, then timed input and output events.
    let cast = env.ok(&["logs", "it", id, "--asciinema"]);
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(
        header["width"], 100,
        "the terminal's size when it opened: {header}"
    );
    assert!(header["height"].as_u64().unwrap() > 0 && header["timestamp"].as_i64().unwrap() > 0);
    let events: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "event times go backwards: {times:?}"
    );
    let output: String = events
        .iter()
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap())
        .collect();
    let input: String = events
        .iter()
        .filter(|e| e[1] == "i")
        .map(|e| e[2].as_str().unwrap())
        .collect();
    assert!(
        output.contains("typed-42") && input.contains("echo typed-$((20+22))"),
        "{cast}"
    );
    let resized = events
        .iter()
        .any(|e| e[1] == "r" && e[2].as_str().unwrap().starts_with("120x"));
    assert!(resized, "the resize is an `r` event: {cast}");
}

#[test]
fn a_reattach_records_only_what_is_new() {
    let env = Env::new();
    let image = env.busybox();
    let t = Tmux::start(&env, &["use", "ra", "-i", &image], 100, 30);
    t.wait_for("detach with");
    t.line("echo first-$((1+1))");
    t.wait_for("first-2");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("CLI-EXIT=0");
    drop(t);
    let t = Tmux::start(&env, &["use", "ra"], 100, 30);
    t.wait_for("first-2"); // the screen is replayed to the terminal…
    t.line("echo second-$((2+2))");
    t.wait_for("second-4");
    t.keys(&["C-p", "C-q"]);
    t.wait_for("CLI-EXIT=0");
    let list = sessions(&env, "ra", "interactive");
    assert_eq!(list.len(), 2, "{list:?}");
    let newest = env.ok(&["logs", "ra", list[0]["exec_id"].as_str().unwrap()]);
    assert!(newest.contains("second-4"), "{newest}");
    assert!(
        !newest.contains("first-2"),
        "…but not recorded twice: {newest}"
    );
    let first = env.ok(&["logs", "ra", list[1]["exec_id"].as_str().unwrap()]);
    assert!(first.contains("first-2"), "{first}");
}
