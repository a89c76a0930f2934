//! The behaviour every back end must show, as one suite run against each of them.
//!
//! `run_all` panics on the first violation (it is called from tests). It uses only the
//! commands every back end runs: `echo`, `true`, `false`, `exit N`, `env`, `cat`.

// A test suite: failing loudly with a panic is its job.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use islo_agent::proto::{ExecRequest, PROTOCOL_VERSION};

use crate::agent;
use crate::{Driver, DriverError, Limits, Observed, SandboxId, SandboxSpec};

/// A small spec for suite sandboxes.
pub fn spec(name: &str, layers: Vec<PathBuf>) -> SandboxSpec {
    SandboxSpec {
        id: SandboxId(format!("conf-{name}-{}", std::process::id())),
        hostname: name.to_string(),
        layers,
        limits: Limits {
            vcpus: 1,
            memory_bytes: 256 << 20,
            disk_bytes: 1 << 30,
            pids: 128,
        },
        user: "islo".into(),
        uid: 1000,
    }
}

fn exec(argv: &[&str], env: &[(&str, &str)]) -> ExecRequest {
    ExecRequest {
        version: PROTOCOL_VERSION,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        user: "islo".into(),
        workdir: "/workspace".into(),
        tty: None,
    }
}

const PATH: (&str, &str) = ("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");

/// Run the whole suite. `make` builds a spec for a sandbox name.
pub fn run_all(driver: &dyn Driver, make: &dyn Fn(&str) -> SandboxSpec) {
    lifecycle(driver, &make("life"));
    errors(driver, &make("errs"));
}

fn lifecycle(d: &dyn Driver, spec: &SandboxSpec) {
    let sock = d.agent_socket(&spec.id);
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Missing);
    d.create(spec).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Running);

    let (st, out, err) =
        agent::run_collect(&sock, exec(&["echo", "hello", "world"], &[PATH])).unwrap();
    assert_eq!(
        (st.code, out.as_slice()),
        (0, &b"hello world\n"[..]),
        "stderr: {}",
        String::from_utf8_lossy(&err)
    );
    let (st, _, _) = agent::run_collect(&sock, exec(&["false"], &[PATH])).unwrap();
    assert_eq!(st.code, 1);
    let (st, out, _) =
        agent::run_collect(&sock, exec(&["env"], &[PATH, ("GREETING", "hi")])).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(st.code, 0);
    assert!(out.lines().any(|l| l == "GREETING=hi"), "env output: {out}");
    let (st, _, _) = agent::run_collect(&sock, exec(&["no-such-command-xyz"], &[PATH])).unwrap();
    assert_eq!(st.code, 127);

    let mut conn = agent::exec(&sock, exec(&["cat"], &[PATH])).unwrap();
    let mut ctl = conn.control().unwrap();
    ctl.stdin(b"piped input").unwrap();
    ctl.close_stdin().unwrap();
    let mut got = Vec::new();
    while let Some(ev) = conn.next_event().unwrap() {
        match ev {
            agent::ExecEvent::Stdout(b) => got.extend(b),
            agent::ExecEvent::Exit(st) => {
                assert_eq!(st.code, 0);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, b"piped input");

    d.stop(&spec.id).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Stopped);
    assert!(
        agent::ping(&sock).is_err(),
        "a stopped sandbox's agent must not answer"
    );
    d.stop(&spec.id).unwrap();
    d.start(spec).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Running);
    agent::ping(&sock).unwrap();

    d.destroy(&spec.id).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Missing);
    d.destroy(&spec.id).unwrap();
}

fn errors(d: &dyn Driver, spec: &SandboxSpec) {
    assert!(matches!(d.start(spec), Err(DriverError::NotFound(_))));
    assert!(matches!(d.stop(&spec.id), Err(DriverError::NotFound(_))));
    d.create(spec).unwrap();
    assert!(matches!(d.create(spec), Err(DriverError::AlreadyExists(_))));
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Running);
    d.destroy(&spec.id).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Missing);
}
