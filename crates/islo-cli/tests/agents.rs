//! `islo use --agent claude --task …` end to end: the real Claude Code from the npm registry,
//! installed in a Node image through the gateway, runs a real task against a local stand-in
//! for the Anthropic API (scripted replies, one of them a tool call that writes a file),
//! reached through the real gateway, which injects the key the sandbox never holds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::upstream::{Certs, fixture, json_lines, spawn_ready};
use common::{Env, stderr, stdout};

const KEY: &str = "sk-ant-test-0123456789abcdef";

struct FakeApi {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl FakeApi {
    fn start(certs: &Certs, dir: &Path) -> Self {
        let log = dir.join("anthropic.jsonl");
        let mut cmd = Command::new("python3");
        cmd.arg(fixture("fake_anthropic.py"))
            .args(["--delay", "5"])
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .arg("--log")
            .arg(&log);
        let (child, ports) = spawn_ready(&mut cmd);
        Self {
            child,
            port: ports[0],
            log,
        }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        json_lines(&self.log)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host of the npm registry this machine is set up for.
fn npm_registry_host() -> String {
    let out = Command::new("npm")
        .args(["config", "get", "registry"])
        .output()
        .unwrap();
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
        .unwrap_or_default();
    assert!(!host.is_empty(), "no npm registry configured: {url:?}");
    host.to_string()
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn claude_runs_a_task_with_the_key_injected_by_the_gateway() {
    let certs = Certs::signed();
    let tmp = tempfile::tempdir().unwrap();
    let api = FakeApi::start(&certs, tmp.path());
    let port = api.port;
    let gateway = format!(
        "  hosts:\n    api.anthropic.com: 127.0.0.1:{port}\n  upstream_ca_files: [{}]\n",
        certs.ca.display()
    );
    let env = Env::with_gateway("", &gateway);
    let node = format!("{}/islo-test/node:latest", env.registry);

    // Refused before anything is made: a task without an agent, an agent without its key.
    let o = env.islo(&["use", "agent-box", "-i", &node, "--task", "anything"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = env.islo(&[
        "use",
        "agent-box",
        "-i",
        &node,
        "--agent",
        "claude",
        "--task",
        "anything",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("islo login --tool anthropic"),
        "{}",
        stderr(&o)
    );
    let o = env.islo(&[
        "use",
        "agent-box",
        "-i",
        &node,
        "--agent",
        "nosuch",
        "--task",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!env.ok(&["ls", "-o", "json"]).contains("agent-box"));

    // The key, from the usual env var, into islod.
    let o = env
        .islo_cmd()
        .env("ANTHROPIC_API_KEY", KEY)
        .args(["login", "--tool", "anthropic"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // Only the API and the package registry are let out (nothing else leaves this machine).
    env.ok(&[
        "gateway",
        "create",
        "--name",
        "agents",
        "--default-action",
        "deny",
    ]);
    env.ok(&[
        "gateway",
        "agents",
        "add-rule",
        "--host",
        "api.anthropic.com",
    ]);
    env.ok(&[
        "gateway",
        "agents",
        "add-rule",
        "--host",
        &npm_registry_host(),
    ]);

    // The task: Claude Code is installed from the npm registry through the gateway, started in
    // a background session, and `islo use` returns while it still works.
    let o = env.islo(&[
        "use",
        "agent-box",
        "-i",
        &node,
        "--gateway-profile",
        "agents",
        "--agent",
        "claude",
        "--task",
        "Create agent-output.txt saying that the agent wrote it.",
    ]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let session = stdout(&o).trim().to_string();
    assert!(session.starts_with("claude-task-"), "{session}");
    assert!(
        stderr(&o).contains(&format!("islo use agent-box -s {session}")),
        "{}",
        stderr(&o)
    );
    let early = env.islo(&[
        "use",
        "agent-box",
        "--",
        "test",
        "-e",
        "/workspace/agent-output.txt",
    ]);
    assert!(
        !early.status.success(),
        "--task returned only after the task had written its file"
    );

    let written = wait_for("the file the task writes", 120, || {
        let o = env.islo(&[
            "use",
            "agent-box",
            "--",
            "cat",
            "/workspace/agent-output.txt",
        ]);
        o.status.success().then(|| stdout(&o))
    });
    assert_eq!(written, "written by the agent\n");

    // The agent session and its events are in the audit log.
    let sessions: Vec<serde_json::Value> = wait_for("the agent session", 60, || {
        let out = env.ok(&["logs", "agent-box", "--type", "agent", "-o", "json"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let done = v
            .iter()
            .any(|s| s["event_count"].as_u64().unwrap_or(0) >= 4);
        done.then_some(v)
    });
    let name = sessions[0]["session_name"].as_str().unwrap().to_string();
    assert_eq!(sessions[0]["harness_name"], "claude-code");
    let events = env.ok(&["logs", "agent-box", &name]);
    assert!(
        events.contains("Write") && events.contains("agent-output.txt"),
        "{events}"
    );

    // The API got the real key; the sandbox only ever had a placeholder.
    let reqs = api.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        let h = r["headers"].as_object().unwrap();
        let key = h
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-api-key"))
            .map(|(_, v)| v.as_str().unwrap());
        assert_eq!(key, Some(KEY), "{r}");
    }
    let placeholder = stdout(&env.islo(&[
        "use",
        "agent-box",
        "--",
        "sh",
        "-c",
        "printf %s \"$ANTHROPIC_API_KEY\"",
    ]));
    assert!(placeholder.starts_with("islo_p_"), "{placeholder}");
    let script = "S=$(printf %s c2stYW50LXRlc3QtMDEyMzQ1Njc4OWFiY2RlZg== | base64 -d); \
                  grep -rlsF \"$S\" /proc/[0-9]*/environ /home /root /tmp /workspace /etc 2>/dev/null | grep -v '^/proc/self'; true";
    let found = stdout(&env.root_sh("agent-box", script));
    assert!(
        found.trim().is_empty(),
        "the key is in the sandbox: {found}"
    );
    env.ok(&["rm", "agent-box", "-f"]);
}
