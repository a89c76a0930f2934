//! Agent sessions through the real CLI and a real sandbox: Claude Code transcripts (in the
//! format the real CLI writes, `tests/fixtures/claude-code`) placed in the sandbox user's
//! `~/.claude/projects` are listed by `islo logs` and read back, live with `-f`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::time::Duration;

use common::{Env, stderr, stdout};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/claude-code"
);
const SID: &str = "5c2b8f4e-7a1d-4d0e-9b3a-2f6c8e1d4a70";
const HOME_PROJECTS: &str = "/home/islo/.claude/projects";

/// Write `data` to `path` inside the sandbox as its user (`>>` appends).
fn put(env: &Env, sandbox: &str, path: &str, data: &[u8], redirect: &str) {
    let script = format!("mkdir -p \"$(dirname \"$1\")\" && cat {redirect} \"$1\"");
    let mut child = env
        .islo_cmd()
        .args(["use", sandbox, "--", "sh", "-c", &script, "sh", path])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    assert!(child.wait().unwrap().success());
}

fn place_fixtures(env: &Env, sandbox: &str) {
    for rel in [
        format!("-workspace-app/{SID}.jsonl"),
        format!("-workspace-app/{SID}/subagents/agent-a3f9c21.jsonl"),
    ] {
        let data = std::fs::read(format!("{FIXTURES}/{rel}")).unwrap();
        put(env, sandbox, &format!("{HOME_PROJECTS}/{rel}"), &data, ">");
    }
}

#[test]
fn agent_sessions_are_listed_and_read_back() {
    let env = Env::new();
    assert!(env.sh("ag", "true").status.success());
    let o = env.islo(&["logs", "ag"]);
    assert!(o.status.success() && stdout(&o).is_empty());
    assert!(stderr(&o).contains("No agent sessions"), "{}", stderr(&o));
    place_fixtures(&env, "ag");

    let table = env.ok(&["logs", "ag"]);
    assert!(table.starts_with("SESSION"), "{table}");
    assert!(
        table.contains(SID) && table.contains("└ agent-a3f9c21"),
        "{table}"
    );
    assert!(table.contains("claude-sonnet-4-5-20250929"), "{table}");
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["logs", "ag", "--type", "agent", "-o", "json"])).unwrap();
    assert_eq!(list.len(), 1, "top-level sessions: {list:?}");
    let s = &list[0];
    assert_eq!(
        (&s["session_name"], &s["cwd"], &s["git_branch"]),
        (
            &SID.into(),
            &"/workspace/app".into(),
            &"feature/health".into()
        )
    );
    assert_eq!(
        s["first_user_text"],
        "Add a /healthz endpoint to server.py and a test for it"
    );
    assert_eq!(s["last_timestamp"], "2026-11-20T10:00:31.250Z");
    assert_eq!(
        (s["child_count"].as_u64(), s["event_count"].as_u64()),
        (Some(1), Some(10))
    );

    let text = env.ok(&["logs", "ag", SID]);
    assert!(
        text.contains("user_message") && text.contains("Add a /healthz endpoint"),
        "{text}"
    );
    assert!(
        text.contains("tool_use           [agent-a3f9c21] Glob {"),
        "{text}"
    );
    assert_eq!(
        env.ok(&["logs", "ag", SID, "--head", "2"]).lines().count(),
        2
    );
    let tail = env.ok(&["logs", "ag", SID, "--tail", "1"]);
    assert!(tail.contains("Added the /healthz endpoint"), "{tail}");
    let events: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["logs", "ag", SID, "-o", "json"])).unwrap();
    assert_eq!(events.len(), 14, "with the sub-agent's events");
    let since = env.ok(&[
        "logs",
        "ag",
        SID,
        "--since",
        "2026-11-20T10:00:22Z",
        "-o",
        "json",
    ]);
    let since: Vec<serde_json::Value> = serde_json::from_str(&since).unwrap();
    assert_eq!(since.len(), 4);

    let o = env.islo(&["logs", "ag", "no-such-session"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no-such-session"), "{}", stderr(&o));
    assert_eq!(env.islo(&["logs", "ghost"]).status.code(), Some(3));

    // Recorded sessions outlive the sandbox (read by id), and islod restarts.
    let id = env.id_of("ag");
    env.ok(&["rm", "-f", "ag"]);
    env.stop_islod();
    let after: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["logs", &id, "-o", "json"])).unwrap();
    assert_eq!(after.len(), 1);
}

#[test]
fn follow_shows_new_transcript_entries() {
    let env = Env::new();
    assert!(env.sh("agf", "true").status.success());
    place_fixtures(&env, "agf");
    let mut child = env
        .islo_cmd()
        .args(["logs", "agf", SID, "-f"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Ok(l) = rx.recv_timeout(deadline - std::time::Instant::now()) {
            if l.contains(needle) {
                return;
            }
        }
        panic!("{needle:?} never arrived");
    };
    wait_for("Added the /healthz endpoint");
    let line = serde_json::json!({
        "parentUuid": null, "isSidechain": false, "userType": "external",
        "cwd": "/workspace/app", "sessionId": SID, "version": "2.1.29",
        "gitBranch": "feature/health", "type": "user",
        "message": {"role": "user", "content": "Now run the tests"},
        "uuid": "6f1f7f5e-2b7e-4a53-9d2e-1c1f0f4f3a10", "timestamp": "2026-11-20T10:01:00.000Z"
    });
    let path = format!("{HOME_PROJECTS}/-workspace-app/{SID}.jsonl");
    put(&env, "agf", &path, format!("{line}\n").as_bytes(), ">>");
    wait_for("Now run the tests");
    child.kill().unwrap();
    child.wait().unwrap();
}
