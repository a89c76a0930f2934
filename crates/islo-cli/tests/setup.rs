//! Project setup through the real CLI: islo.yaml setup steps run once, in order, as the
//! sandbox user in /workspace with bash, stream while `islo use` waits, are recorded, and stop
//! at the first failure; `--env-file` with `-e` winning.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, stderr, stdout};

fn project(env: &Env, name: &str, yaml: &str) -> String {
    let path = env.dir.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

fn steps(env: &Env, sandbox: &str) -> Vec<(String, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", sandbox, "-o", "json"])).unwrap();
    v["setup_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

const GOOD: &str = "sandbox: proj\nimage: python:3.12-slim\nsetup_scripts:\n  - name: first\n    script: echo step-one-out; echo step-one-err >&2; echo 1 >> /workspace/ran\n  - name: second\n    script: |\n      pwd > /workspace/where\n      whoami >> /workspace/where\n";

#[test]
fn setup_steps_run_once_in_order_and_stream() {
    let env = Env::new();
    let cfg = project(&env, "good.yaml", GOOD);
    let o = env.islo(&[
        "--config",
        &cfg,
        "use",
        "--",
        "cat",
        "/workspace/ran",
        "/workspace/where",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1\n/workspace\nislo\n");
    let err = stderr(&o);
    let (a, b) = (
        err.find("==> setup: first").unwrap(),
        err.find("==> setup: second").unwrap(),
    );
    assert!(
        a < b && err.contains("step-one-out") && err.contains("step-one-err"),
        "{err}"
    );
    assert_eq!(
        steps(&env, "proj"),
        [
            ("first".into(), "succeeded".into()),
            ("second".into(), "succeeded".into())
        ]
    );
    let logs = env.ok(&["logs", "proj", "--type", "exec", "-o", "json"]);
    assert!(
        logs.contains("echo step-one-out"),
        "setup steps are in the audit log: {logs}"
    );

    // Reconnecting never runs setup again; nor does a sandbox from a snapshot.
    let o = env.islo(&["--config", &cfg, "use", "--", "cat", "/workspace/ran"]);
    assert_eq!(stdout(&o), "1\n");
    assert!(!stderr(&o).contains("==> setup"), "{}", stderr(&o));
    env.ok(&["snapshot", "save", "proj", "--name", "proj-snap"]);
    let o = env.islo(&[
        "--config",
        &cfg,
        "use",
        "fork",
        "--snapshot",
        "proj-snap",
        "--",
        "cat",
        "/workspace/ran",
    ]);
    assert_eq!(stdout(&o), "1\n", "{}", stderr(&o));
    assert!(!stderr(&o).contains("==> setup"), "{}", stderr(&o));
}

#[test]
fn images_without_bash_run_setup_with_sh_and_say_so() {
    let env = Env::new();
    let yaml = format!(
        "sandbox: tiny\nimage: {}\nsetup_scripts:\n  - name: hello\n    script: echo made-by-sh > /workspace/made\n",
        env.busybox()
    );
    let cfg = project(&env, "tiny.yaml", &yaml);
    let o = env.islo(&["--config", &cfg, "use", "--", "cat", "/workspace/made"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "made-by-sh\n");
    assert!(
        stderr(&o).contains("this image has no bash; running the setup script with sh"),
        "{}",
        stderr(&o)
    );
    assert_eq!(steps(&env, "tiny"), [("hello".into(), "succeeded".into())]);
}

#[test]
fn a_failing_step_stops_the_rest_and_says_so() {
    let env = Env::new();
    let yaml = "sandbox: bad\nimage: python:3.12-slim\nsetup_scripts:\n  - name: ok\n    script: echo fine\n  - name: breaks\n    script: echo about to fail >&2; exit 3\n  - name: never\n    script: touch /workspace/never\n";
    let cfg = project(&env, "bad.yaml", yaml);
    let o = env.islo(&["--config", &cfg, "use", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(
        err.contains("setup step breaks failed (exit code 3)") && err.contains("about to fail"),
        "{err}"
    );
    assert_eq!(
        steps(&env, "bad"),
        [
            ("ok".into(), "succeeded".into()),
            ("breaks".into(), "failed".into()),
            ("never".into(), "skipped".into())
        ]
    );
    let o = env.islo(&["use", "bad", "--", "ls", "/workspace/never"]);
    assert_ne!(o.status.code(), Some(0), "the skipped step did not run");

    // Bad islo.yaml: a clear error naming the file, nothing created.
    let cfg = project(
        &env,
        "typo.yaml",
        "sandbox: typo\nsetup_scripts:\n  - name: x\n    scirpt: true\n",
    );
    let o = env.islo(&["--config", &cfg, "use", "--", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("typo.yaml") && stderr(&o).contains("scirpt"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.islo(&["status", "typo"]).status.code(), Some(3));
}

#[test]
fn env_files_reach_every_exec_and_flags_win() {
    let env = Env::new();
    let file = project(
        &env,
        "vars.env",
        "# vars\nFROM_FILE=from-file\nexport BOTH=file\nQUOTED=\"two words\"\n",
    );
    let o = env.islo(&[
        "use",
        "ef",
        "-i",
        &env.busybox(),
        "--env-file",
        &file,
        "-e",
        "BOTH=flag",
        "--",
        "sh",
        "-c",
        "echo $FROM_FILE $BOTH $QUOTED",
    ]);
    assert_eq!(stdout(&o), "from-file flag two words\n", "{}", stderr(&o));
    let o = env.islo(&["use", "ef", "--", "sh", "-c", "echo $FROM_FILE"]);
    assert_eq!(stdout(&o), "from-file\n", "later execs keep them");
    let broken = project(&env, "broken.env", "A=1\nnot a variable line\n");
    let o = env.islo(&[
        "use",
        "ef2",
        "-i",
        &env.busybox(),
        "--env-file",
        &broken,
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("broken.env:2"), "{}", stderr(&o));
    assert_eq!(
        env.islo(&["status", "ef2"]).status.code(),
        Some(3),
        "nothing was created"
    );
}
