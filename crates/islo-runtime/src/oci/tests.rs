//! The OCI driver's decisions, on a [`RecordingHost`]: no root, no runtime, no mounts.

use std::path::Path;
use std::sync::Arc;

use super::recording::{Call, RecordingHost};
use super::*;
use crate::{IdMap, NetworkSpec};

const BASE: u32 = 1 << 30;

fn driver(state: &Path) -> (OciDriver, Arc<RecordingHost>) {
    let host = Arc::new(RecordingHost::default());
    let cfg = OciConfig {
        state_dir: state.into(),
        runtime_root: state.join("runtime"),
        agent_binary: "/islo-agent".into(),
        runtime: None,
        favor_dynmods: false,
        fit_host_limits: false,
        runsc: None,
        gvisor_platform: None,
    };
    let disks = disk::Disks::new(state, host.clone()).unwrap();
    let activity = disks.activity();
    let d = OciDriver {
        cfg,
        runtime: "/usr/bin/crun".into(),
        program: "/usr/bin/crun".into(),
        _sealed: None,
        host: host.clone(),
        nofile_hard: 1024,
        disks,
        trash: super::trash::Trash::new(state, activity).unwrap(),
        userns: Ok(()),
        gvisor: Ok(super::gvisor::Runsc {
            program: "/usr/bin/runsc".into(),
            root: state.join("runtime-gvisor"),
            platform: "ptrace".into(),
        }),
    };
    (d, host)
}

fn spec(ids: Option<IdMap>) -> SandboxSpec {
    let mut s = crate::conformance::spec("rec", vec!["/layers/a".into(), "/layers/b".into()]);
    s.network = Some(NetworkSpec {
        host_if: "isrecs0".into(),
        host_addr: "10.9.0.1".parse().unwrap(),
        sandbox_addr: "10.9.0.2".parse().unwrap(),
        prefix_len: 30,
    });
    s.ids = ids;
    s
}

/// A `crun run` of a sandbox.
fn is_runtime_run(c: &Call) -> bool {
    matches!(c, Call::Detached(p, a) if p == "crun" && a.contains(&"run".to_string()))
}

fn position(calls: &[Call], what: &str, f: impl Fn(&Call) -> bool) -> usize {
    calls
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("no {what} in {calls:#?}"))
}

#[test]
fn a_sandbox_in_a_user_namespace_joins_the_namespaces_the_driver_pinned() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let ids = IdMap {
        base: BASE,
        size: IdMap::SIZE,
    };
    let s = spec(Some(ids));
    d.create(&s).unwrap();
    let dir = d.dir(&s.id);
    let calls = host.calls();
    let own_ns = position(&calls, "the sandbox's mount namespace", |c| {
        *c == Call::MountNs(dir.join("mntns"))
    });
    let disk = position(
        &calls,
        "disk mount",
        |c| matches!(c, Call::Mount(Mount::Loop { target, .. }) if *target == dir.join("disk")),
    );
    let owned = position(&calls, "upper given to root inside", |c| {
        *c == Call::Chown(dir.join("disk/upper"), BASE, BASE)
    });
    assert!(calls.contains(&Call::Chown(dir.join("disk/run"), BASE, BASE)));
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Chown(p, ..) if p.ends_with("work"))),
        "overlayfs's work dir stays the host's"
    );
    let ns = position(&calls, "namespaces", |c| {
        *c == Call::Namespaces {
            ids,
            user: dir.join("userns"),
            net: Some(net::netns_path(&s.id)),
        }
    });
    let overlay = position(&calls, "overlay", |c| {
        matches!(c, Call::Mount(Mount::Overlay { idmap, lower, .. })
            if *idmap == Some(dir.join("userns")) && *lower == s.layers)
    });
    let link = position(
        &calls,
        "veth",
        |c| matches!(c, Call::Link(ns, i) if *ns == net::netns_path(&s.id) && i == "isrecs0"),
    );
    let run = position(&calls, "runtime run", is_runtime_run);
    assert!(
        own_ns < disk && disk < owned && owned < ns && ns < overlay && overlay < link && link < run,
        "{calls:#?}"
    );

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let joined: Vec<&serde_json::Value> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(joined.contains(&&serde_json::json!({"type": "user", "path": dir.join("userns")})));
    assert!(
        joined.contains(&&serde_json::json!({"type": "network", "path": net::netns_path(&s.id)}))
    );
    assert!(config["linux"].get("uidMappings").is_none());
    let owned_for: IdMap =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ids.json")).unwrap()).unwrap();
    assert_eq!(owned_for, ids, "the disk is recorded as owned for its map");
}

#[test]
fn runtime_lists_are_read_as_crun_and_runc_print_them() {
    let crun = r#"[{"id":"a","pid":7,"status":"running","bundle":"/b","created":"x","owner":"root"},
        {"id":"b","pid":0,"status":"stopped","bundle":"/b","created":"x","owner":"root"}]"#;
    let listed = super::parse_list(crun).unwrap();
    assert_eq!(listed["a"], "running");
    assert_eq!(super::observed_as(&listed["b"]), Observed::Stopped);
    assert_eq!(super::observed_as("paused"), Observed::Frozen);
    assert!(
        super::parse_list("null").unwrap().is_empty(),
        "runc's empty list"
    );
    assert!(super::parse_list("oops").is_err());
}

#[test]
fn observing_all_at_once_agrees_with_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let (a, mut b) = (spec(None), spec(None));
    b.id = SandboxId("other".into());
    d.create(&a).unwrap();
    d.create(&b).unwrap();
    d.stop(&b.id).unwrap();
    let ids = [a.id.clone(), b.id.clone(), SandboxId("never".into())];
    let one_by_one: Vec<_> = ids.iter().map(|i| d.observe(i).unwrap()).collect();
    assert_eq!(
        one_by_one,
        [Observed::Running, Observed::Stopped, Observed::Missing]
    );
    assert_eq!(d.observe_all(&ids).unwrap(), one_by_one);
    host.fail_runs_with("list");
    assert_eq!(
        d.observe_all(&ids).unwrap(),
        one_by_one,
        "a failing list falls back to asking one by one"
    );
}

#[test]
fn a_stopped_export_whose_disk_will_not_mount_fails_and_leaves_nothing_mounted() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let s = spec(None);
    d.create(&s).unwrap();
    d.stop(&s.id).unwrap();
    host.fail_mounts();
    let mut sink = Vec::new();
    let err = d.export_changes(&s, &mut sink).unwrap_err();
    assert!(err.to_string().contains("mounting disk"), "{err}");
    assert!(host.mounted().is_empty(), "{:?}", host.mounted());
}

#[test]
fn a_link_that_cannot_be_made_fails_the_create_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let s = spec(Some(IdMap {
        base: BASE,
        size: IdMap::SIZE,
    }));
    host.fail_runs_with("isrecs0");
    let err = d.create(&s).unwrap_err().to_string();
    assert!(
        err.contains("setting up the network") && err.contains("linking isrecs0"),
        "{err}"
    );
    let calls = host.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Detached(p, _) if p == "crun")),
        "the runtime ran without a link: {calls:#?}"
    );
    assert!(host.mounted().is_empty(), "{:?}", host.mounted());
    assert!(!d.dir(&s.id).exists(), "the sandbox's directory stayed");
}

#[test]
fn stop_undoes_in_reverse_and_a_start_pins_fresh_namespaces() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let s = spec(Some(IdMap {
        base: BASE,
        size: IdMap::SIZE,
    }));
    d.create(&s).unwrap();
    assert_eq!(d.observe(&s.id).unwrap(), Observed::Running);
    let dir = d.dir(&s.id);
    host.clear();
    d.stop(&s.id).unwrap();
    let calls = host.calls();
    let killed = position(
        &calls,
        "delete",
        |c| matches!(c, Call::Run(p, a) if p == "crun" && a.contains(&"delete".to_string())),
    );
    let unmounts: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c, Call::Unmount(_)))
        .collect();
    assert_eq!(
        unmounts,
        [
            &Call::Unmount(dir.join("rootfs")),
            &Call::Unmount(dir.join("userns")),
            &Call::Unmount(dir.join("disk")),
            &Call::Unmount(dir.join("mntns")),
        ],
        "the overlay before what it stands on, the namespace they were in last"
    );
    assert!(killed < position(&calls, "unmount", |c| matches!(c, Call::Unmount(_))));
    assert!(
        !calls.iter().any(|c| matches!(c, Call::Discard(_))),
        "a stop writes the disk out: it is kept"
    );
    assert!(
        host.mounted().is_empty(),
        "a stopped sandbox holds nothing mounted, its mount namespace neither"
    );
    assert_eq!(d.observe(&s.id).unwrap(), Observed::Stopped);

    host.clear();
    d.start(&s).unwrap();
    let calls = host.calls();
    let ns = position(&calls, "namespaces", |c| {
        matches!(c, Call::Namespaces { .. })
    });
    let overlay = position(&calls, "overlay", |c| {
        matches!(c, Call::Mount(Mount::Overlay { .. }))
    });
    assert!(ns < overlay);
    assert!(
        !calls.iter().any(|c| matches!(c, Call::Chown(..))),
        "a disk already owned for its map is not owned again"
    );
    host.clear();
    d.destroy(&s.id).unwrap();
    let calls = host.calls();
    let discarded = position(&calls, "discard", |c| *c == Call::Discard(dir.join("disk")));
    assert!(
        discarded < position(&calls, "unmount", |c| matches!(c, Call::Unmount(_))),
        "a destroyed sandbox's disk is dropped unwritten before anything on it is unmounted"
    );
    assert!(host.mounted().is_empty() && !dir.exists());
}

#[test]
fn without_ids_no_user_namespace_is_made_or_joined() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let s = spec(None);
    d.create(&s).unwrap();
    let calls = host.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Namespaces { .. } | Call::Chown(..)))
    );
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::Mount(Mount::Overlay { idmap: None, .. })))
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.dir(&s.id).join("config.json")).unwrap())
            .unwrap();
    let kinds: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"user"), "{kinds:?}");
    d.destroy(&s.id).unwrap();
}

#[test]
fn a_gvisor_sandbox_runs_under_runsc_from_its_network_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let mut s = spec(None);
    s.isolation = crate::Isolation::Gvisor;
    d.create(&s).unwrap();
    let calls = host.calls();
    let (program, args) = calls
        .iter()
        .find_map(|c| match c {
            Call::Detached(p, a) => Some((p.clone(), a.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(program, "runsc");
    let ns = format!("--net={}", super::net::netns_path(&s.id).display());
    assert_eq!(args[0], ns, "started from the sandbox's network namespace");
    for want in [
        "--platform=ptrace",
        "--network=host",
        "--host-uds=create",
        "--file-access=shared",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
    }
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Namespaces { .. } | Call::Chown(..)))
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.dir(&s.id).join("config.json")).unwrap())
            .unwrap();
    assert!(config["linux"].get("seccomp").is_none());
    assert_eq!(d.agent_socket(&s.id), d.dir(&s.id).join("sock/agent.sock"));
    // Its socket directory is sealed once the agent answers, and unsealed to be removed.
    let sock_dir = d.dir(&s.id).join("sock");
    let sealed = position(&calls, "seal", |c| {
        *c == Call::Immutable(sock_dir.clone(), true)
    });
    let started = position(&calls, "runsc run", |c| matches!(c, Call::Detached(..)));
    assert!(started < sealed);
    // Its runtime commands are runsc's, and pausing is refused by class.
    host.clear();
    assert!(matches!(
        d.pause(&s),
        Err(DriverError::Unsupported {
            class: crate::Isolation::Gvisor,
            ..
        })
    ));
    d.stop(&s.id).unwrap();
    let calls = host.calls();
    assert!(
        calls.iter().any(|c| matches!(c, Call::Run(p, a)
        if p == "runsc" && a.iter().any(|x| x == "--force"))),
        "{calls:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Run(p, _) if p == "crun"))
    );
    host.clear();
    d.destroy(&s.id).unwrap();
    assert!(host.calls().contains(&Call::Immutable(sock_dir, false)));
}

#[test]
fn a_gvisor_sandbox_without_a_link_gets_no_host_network() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let mut s = spec(None);
    s.network = None;
    s.isolation = crate::Isolation::Gvisor;
    d.create(&s).unwrap();
    let args = host
        .calls()
        .iter()
        .find_map(|c| match c {
            Call::Detached(_, a) => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    assert!(args.iter().any(|a| a == "--network=none"), "{args:?}");
    assert!(!args.iter().any(|a| a == "--network=host"), "{args:?}");
    d.destroy(&s.id).unwrap();
}

/// Wait (bounded) until the pool holds a disk mounted ahead.
fn await_mounted_ahead(d: &OciDriver) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while d.disks.mounted_ahead() == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the pool mounted nothing ahead"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Create sandbox `id`: its spec, its directory and the calls the create alone made.
fn create_recorded(
    d: &OciDriver,
    host: &RecordingHost,
    id: &str,
) -> (SandboxSpec, std::path::PathBuf, Vec<Call>) {
    let mut s = spec(None);
    s.id = SandboxId(id.into());
    host.clear();
    d.create(&s).unwrap();
    let dir = d.dir(&s.id);
    (s, dir, host.calls())
}

#[test]
fn a_disk_mounted_ahead_is_attached_and_one_that_will_not_attach_is_mounted() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    host.mount_ahead(true);
    let mut first = spec(None);
    first.id = SandboxId("ahead-1".into());
    d.create(&first).unwrap();
    await_mounted_ahead(&d);

    // Attaching fails: the mount goes with its descriptor and the image is mounted instead.
    let (refused, dir, calls) = create_recorded(&d, &host, "ahead-2");
    assert!(
        calls.contains(&Call::Mount(Mount::Loop {
            image: dir.join("disk.img"),
            target: dir.join("disk"),
        })),
        "{calls:?}"
    );
    assert_eq!(d.observe(&refused.id).unwrap(), Observed::Running);

    // Attaching works: no mount of the image at all.
    host.mount_ahead(false);
    await_mounted_ahead(&d);
    let (attached, dir, calls) = create_recorded(&d, &host, "ahead-3");
    assert!(calls.contains(&Call::Attach(dir.join("disk"))), "{calls:?}");
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Mount(Mount::Loop { .. }))),
        "{calls:?}"
    );
    for s in [&first, &refused, &attached] {
        d.destroy(&s.id).unwrap();
    }
    assert!(host.mounted().is_empty());
}

#[test]
fn a_sandbox_started_ahead_is_made_at_the_lowest_priority_and_only_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, host) = driver(tmp.path());
    let mut s = spec(None);
    d.create(&s).unwrap();
    assert!(
        !host.calls().iter().any(|c| matches!(c, Call::Nice(..))),
        "a plain create keeps its thread's priority"
    );
    d.destroy(&s.id).unwrap();
    host.clear();
    s.ahead = true;
    d.create(&s).unwrap();
    let calls = host.calls();
    let lowered = position(&calls, "priority lowered", |c| *c == Call::Nice(None, 19));
    let run = position(&calls, "runtime run", is_runtime_run);
    let restored = position(&calls, "priority restored", |c| *c == Call::Nice(None, 0));
    assert!(lowered < run && run < restored, "{calls:#?}");
}
