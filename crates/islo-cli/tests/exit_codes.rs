//! One exit-code rule across every transport of an exec: the command's own code, 128+N when
//! signal N ended it, 125 when it could not start at all. Checked through the CLI on pipes
//! and on a terminal (both WebSockets), the streamed exec API (SSE) and the background exec
//! API (SSH has its own checks in `ssh.rs`, which needs an OpenSSH set-up).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::process::Command;

use common::{Env, stderr, stdout};

/// A request to islod's API on its unix socket: the body of the answer.
fn api(env: &Env, method: &str, path: &str, body: Option<serde_json::Value>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-N", "--unix-socket"])
        .arg(env.state().join("islod.sock"))
        .args(["-X", method]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "-d", &b.to_string()]);
    }
    let o = cmd.arg(format!("http://islod{path}")).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// `islo ARGS` on a pseudo-terminal (util-linux `script`), so it opens a terminal exec.
fn on_terminal(env: &Env, args: &[&str]) -> std::process::Output {
    let islo = env!("CARGO_BIN_EXE_islo");
    let line = std::iter::once(islo)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = env.islo_cmd_program("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The data of the SSE events named `name`.
fn sse_data(body: &str, name: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| e.lines().any(|l| l == format!("event: {name}")))
        .map(|e| {
            e.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// A background exec's result once it has ended.
fn background(env: &Env, sandbox: &str, req: serde_json::Value) -> serde_json::Value {
    let path = format!("/sandboxes/{sandbox}/exec");
    let started: serde_json::Value =
        serde_json::from_str(&api(env, "POST", &path, Some(req))).unwrap();
    let id = started["exec_id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        let r: serde_json::Value =
            serde_json::from_str(&api(env, "GET", &format!("{path}/{id}"), None)).unwrap();
        if r["status"] != "running" {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("exec {id} did not end");
}

#[test]
fn signals_and_refused_starts_end_the_same_on_every_transport() {
    let env = Env::new();
    let o = env.sh("codes", "true");
    assert!(o.status.success(), "{}", stderr(&o));
    let term = ["sh", "-c", "kill -TERM $$"];
    let ghost = ["use", "codes", "--run-as-user", "ghost", "--", "true"];

    // The CLI on pipes (stdin is not a terminal).
    let o = env.islo(&[&["use", "codes", "--"][..], &term].concat());
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let o = env.islo(&ghost);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown user \"ghost\""),
        "{}",
        stderr(&o)
    );

    // The CLI on a terminal.
    let o = on_terminal(&env, &[&["use", "codes", "--"][..], &term].concat());
    assert_eq!(o.status.code(), Some(143), "{}", stdout(&o));
    let o = on_terminal(&env, &ghost);
    assert_eq!(o.status.code(), Some(125), "{}", stdout(&o));
    assert!(stdout(&o).contains("unknown user"), "{}", stdout(&o));

    // The streamed exec API: an `exit` event, or an `error` event naming why.
    let path = "/sandboxes/codes/exec/stream";
    let body = api(
        &env,
        "POST",
        path,
        Some(serde_json::json!({ "command": term })),
    );
    assert_eq!(sse_data(&body, "exit"), ["143"], "{body}");
    let req = serde_json::json!({ "command": ["true"], "user": "ghost" });
    let body = api(&env, "POST", path, Some(req));
    let errors = sse_data(&body, "error");
    assert!(
        errors.len() == 1 && errors[0].contains("unknown user"),
        "{body}"
    );
    assert!(sse_data(&body, "exit").is_empty(), "{body}");

    // The background exec API.
    let r = background(&env, "codes", serde_json::json!({ "command": term }));
    assert_eq!(
        (r["status"].as_str(), r["exit_code"].as_i64()),
        (Some("completed"), Some(143))
    );
    let r = background(
        &env,
        "codes",
        serde_json::json!({ "command": ["true"], "user": "ghost" }),
    );
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["stderr"].as_str().unwrap().contains("unknown user"),
        "{r}"
    );

    // A session that cannot start is a refused request, not a missing thing.
    let req = serde_json::json!({ "name": "s1", "user": "ghost" });
    let answer: serde_json::Value =
        serde_json::from_str(&api(&env, "POST", "/sandboxes/codes/sessions", Some(req))).unwrap();
    assert_eq!(answer["code"], "EXEC_FAILED", "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("unknown user"),
        "{answer}"
    );
}
