//! The behaviour every back end must show, as one suite run against each of them.
//!
//! `run_all` panics on the first violation (it is called from tests). It uses only the
//! commands every back end runs: `echo`, `true`, `false`, `exit N`, `env`, `cat`, `tee`,
//! `hostname`.

// A test suite: failing loudly with a panic is its job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use islo_agent::proto::{ExecRequest, PROTOCOL_VERSION};

use crate::agent;
use crate::{Driver, DriverError, Isolation, Limits, Observed, SandboxId, SandboxSpec};

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
        network: None,
        ids: None,
        isolation: crate::Isolation::Container,
        ahead: false,
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
    files(driver, &make("files"));
    pausing(driver, &make("pause"));
    renaming(driver, &make("name"));
    let offered = driver.isolation_classes();
    if offered
        .iter()
        .any(|c| c.class == Isolation::Gvisor && c.runtime.is_ok())
    {
        let mut spec = make("gvisor");
        spec.isolation = Isolation::Gvisor;
        spec.ids = None;
        gvisor(driver, &spec);
    }
}

/// A sandbox of the gVisor class lives as any other (create, exec, stop, start, destroy) and
/// refuses a pause by naming its class.
fn gvisor(d: &dyn Driver, spec: &SandboxSpec) {
    d.create(spec).unwrap();
    // Where its agent listens depends on its class, known once it exists.
    let sock = d.agent_socket(&spec.id);
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Running);
    let (st, out, _) = agent::run_collect(&sock, exec(&["echo", "hi"], &[PATH])).unwrap();
    assert_eq!((st.code, out.as_slice()), (0, &b"hi\n"[..]));
    let (st, _, _) = agent::run_collect(&sock, exec(&["false"], &[PATH])).unwrap();
    assert_eq!(st.code, 1);
    match d.pause(spec) {
        Err(DriverError::Unsupported { class, .. }) => assert_eq!(class, Isolation::Gvisor),
        other => panic!("a gvisor sandbox paused: {other:?}"),
    }
    match d.hand_over(spec, "renamed") {
        Err(DriverError::Unsupported { class, .. }) => assert_eq!(class, Isolation::Gvisor),
        other => panic!("a gvisor sandbox renamed while running: {other:?}"),
    }
    assert_eq!(
        d.observe(&spec.id).unwrap(),
        Observed::Running,
        "a refused pause changes nothing"
    );
    d.stop(&spec.id).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Stopped);
    d.start(spec).unwrap();
    let (st, _, _) = agent::run_collect(&sock, exec(&["true"], &[PATH])).unwrap();
    assert_eq!(st.code, 0);
    assert_eq!(
        d.observe_all(std::slice::from_ref(&spec.id)).unwrap(),
        [Observed::Running]
    );
    d.destroy(&spec.id).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Missing);
}

/// A sandbox started ahead answers to its spec's hostname and is handed over under another
/// while it runs; only a running one is.
fn renaming(d: &dyn Driver, spec: &SandboxSpec) {
    let spec = &SandboxSpec {
        ahead: true,
        ..spec.clone()
    };
    let sock = d.agent_socket(&spec.id);
    let hostname = || {
        let (st, out, err) = agent::run_collect(&sock, exec(&["hostname"], &[PATH])).unwrap();
        assert_eq!(st.code, 0, "{}", String::from_utf8_lossy(&err));
        String::from_utf8(out).unwrap()
    };
    d.create(spec).unwrap();
    assert_eq!(hostname(), format!("{}\n", spec.hostname));
    d.hand_over(spec, "taken-by-a-create").unwrap();
    assert_eq!(hostname(), "taken-by-a-create\n");
    d.stop(&spec.id).unwrap();
    assert!(
        d.hand_over(spec, "other").is_err(),
        "a stopped sandbox has no hostname to set"
    );
    d.destroy(&spec.id).unwrap();
    assert!(matches!(
        d.hand_over(spec, "x"),
        Err(DriverError::NotFound(_))
    ));
}

/// Pause ends every process and keeps the sandbox for a resume; only a running sandbox pauses
/// and only a paused one resumes; a stop ends a pause.
fn pausing(d: &dyn Driver, spec: &SandboxSpec) {
    let sock = d.agent_socket(&spec.id);
    d.create(spec).unwrap();
    let (st, _, _) = agent::run_collect(&sock, exec(&["true"], &[PATH])).unwrap();
    assert_eq!(st.code, 0);
    assert!(d.resume(spec).is_err(), "a running sandbox does not resume");
    d.pause(spec).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Paused);
    assert!(agent::ping(&sock).is_err(), "nothing answers while paused");
    assert!(
        d.pause(spec).is_err(),
        "a paused sandbox does not pause again"
    );
    d.resume(spec).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Running);
    let (st, _, _) = agent::run_collect(&sock, exec(&["true"], &[PATH])).unwrap();
    assert_eq!(st.code, 0, "commands run after a resume");
    d.pause(spec).unwrap();
    d.stop(&spec.id).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Stopped);
    assert!(d.pause(spec).is_err(), "a stopped sandbox does not pause");
    d.destroy(&spec.id).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Missing);
}

/// Files a command writes are found and read back through the agent (transcript ingestion).
fn files(d: &dyn Driver, spec: &SandboxSpec) {
    let sock = d.agent_socket(&spec.id);
    d.create(spec).unwrap();
    let scan = || {
        agent::scan_files(
            &sock,
            islo_agent::ScanRequest {
                version: PROTOCOL_VERSION,
                dir: ".claude/projects".into(),
                user: Some("islo".into()),
                suffix: ".jsonl".into(),
                max_depth: 3,
                max_files: 100,
            },
        )
        .unwrap()
    };
    assert!(scan().files.is_empty(), "a missing directory has no files");
    let dir = "/home/islo/.claude/projects/-workspace";
    let (st, _, err) = agent::run_collect(&sock, exec(&["mkdir", "-p", dir], &[PATH])).unwrap();
    assert_eq!(st.code, 0, "{}", String::from_utf8_lossy(&err));
    let path = format!("{dir}/s1.jsonl");
    let mut conn = agent::exec(&sock, exec(&["tee", &path], &[PATH])).unwrap();
    let mut ctl = conn.control().unwrap();
    ctl.stdin(b"{\"a\":1}\n{\"b\":2}\n").unwrap();
    ctl.close_stdin().unwrap();
    while let Some(ev) = conn.next_event().unwrap() {
        if let agent::ExecEvent::Exit(st) = ev {
            assert_eq!(st.code, 0);
            break;
        }
    }
    let found = scan();
    assert_eq!(found.root, "/home/islo/.claude/projects");
    assert_eq!(found.files.len(), 1, "{found:?}");
    let f = &found.files[0];
    assert_eq!((f.path.as_str(), f.size), ("-workspace/s1.jsonl", 16));
    assert_eq!(
        agent::read_file(&sock, &path, 8, 100).unwrap(),
        b"{\"b\":2}\n"
    );
    assert!(agent::read_file(&sock, "/home/islo/missing", 0, 10).is_err());
    let root = d
        .rootfs(&spec.id)
        .expect("a running sandbox's files are reachable");
    assert!(
        root.path()
            .join("home/islo/.claude/projects/-workspace/s1.jsonl")
            .is_file()
    );
    // What reaches the files may hold them open: let go before the sandbox stops.
    drop(root);

    // The changes export as a layer, running (and it runs on after) or stopped.
    let want = "home/islo/.claude/projects/-workspace/s1.jsonl";
    let layer_has = |d: &dyn Driver| {
        let mut tar_bytes = Vec::new();
        d.export_changes(spec, &mut tar_bytes).unwrap();
        let mut a = tar::Archive::new(&tar_bytes[..]);
        a.entries().unwrap().map(|e| e.unwrap()).any(|e| {
            e.path().unwrap().to_string_lossy() == want && e.header().size().unwrap() == 16
        })
    };
    assert!(layer_has(d), "the running sandbox's layer holds {want}");
    agent::ping(&sock).unwrap();
    let (st, _, _) = agent::run_collect(&sock, exec(&["true"], &[PATH])).unwrap();
    assert_eq!(st.code, 0, "processes run on after the export");
    d.stop(&spec.id).unwrap();
    assert!(
        d.rootfs(&spec.id).is_none(),
        "a stopped sandbox's files are not mounted"
    );
    assert!(layer_has(d), "the stopped sandbox's layer holds {want}");
    d.destroy(&spec.id).unwrap();
    let mut sink = Vec::new();
    assert!(matches!(
        d.export_changes(spec, &mut sink),
        Err(DriverError::NotFound(_))
    ));
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
    assert!(matches!(d.thaw(&spec.id), Err(DriverError::NotFound(_))));
    assert!(matches!(d.stop(&spec.id), Err(DriverError::NotFound(_))));
    d.create(spec).unwrap();
    assert!(matches!(d.create(spec), Err(DriverError::AlreadyExists(_))));
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Running);
    d.thaw(&spec.id).unwrap(); // not frozen: nothing to do
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Running);
    d.destroy(&spec.id).unwrap();
    assert_eq!(d.observe(&spec.id).unwrap(), Observed::Missing);
}
