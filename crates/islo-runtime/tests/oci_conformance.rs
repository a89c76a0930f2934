//! The shared conformance suite against the real OCI back end (crun, or runc), plus the
//! host-side checks only it can have: nothing left behind after destroy.
//! Needs root; it fails (never skips) without it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::{Path, PathBuf};
use std::sync::Arc;

use islo_runtime::host::RealHost;
use islo_runtime::oci::{OciConfig, OciDriver};
use islo_runtime::{Driver, IdMap, conformance};

/// A busybox layer made from the host's busybox-static.
fn busybox_layer(root: &Path) -> PathBuf {
    let layer = root.join("layer");
    std::fs::create_dir_all(layer.join("bin")).unwrap();
    std::fs::create_dir_all(layer.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", layer.join("bin/busybox"))
        .expect("busybox-static must be installed");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(layer.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    layer
}

/// The tests run one at a time: each checks that no sandbox cgroup is left, the other's too.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn driver(tmp: &Path) -> OciDriver {
    assert!(
        rustix::process::geteuid().is_root(),
        "the OCI driver tests need root (CI runs as root)"
    );
    let cfg = OciConfig {
        state_dir: tmp.join("state"),
        runtime_root: tmp.join("runtime"),
        agent_binary: islo_testkit::agent_path(),
        runtime: None,
        favor_dynmods: true,
        fit_host_limits: true,
        runsc: None,
        gvisor_platform: None,
    };
    OciDriver::new(cfg, Arc::new(RealHost)).unwrap()
}

/// A range of host ids outside islod's default pool (2^30..2^31), which islod tests use.
fn ids(n: u32) -> IdMap {
    IdMap {
        base: 0xB000_0000 + n * IdMap::SIZE,
        size: IdMap::SIZE,
    }
}

#[test]
fn oci_driver_passes_conformance_and_leaves_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let layer = busybox_layer(tmp.path());
    let driver = driver(tmp.path());
    conformance::run_all(&driver, &|name| {
        conformance::spec(name, vec![layer.clone()])
    });
    assert_nothing_left(tmp.path());
}

#[test]
fn in_user_namespaces_too_and_its_processes_are_its_ids_on_the_host() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let layer = busybox_layer(tmp.path());
    let driver = driver(tmp.path());
    driver
        .user_namespaces()
        .expect("this host makes idmapped mounts");
    let n = std::sync::atomic::AtomicU32::new(1);
    conformance::run_all(&driver, &|name| {
        let mut s = conformance::spec(&format!("{name}-u"), vec![layer.clone()]);
        s.ids = Some(ids(n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        s
    });

    let mut spec = conformance::spec("uid", vec![layer.clone()]);
    spec.ids = Some(ids(0));
    driver.create(&spec).unwrap();
    let state = std::process::Command::new("crun")
        .args([
            "--root",
            &tmp.path().join("runtime").display().to_string(),
            "state",
            &spec.id.0,
        ])
        .output()
        .unwrap();
    let pid = serde_json::from_slice::<serde_json::Value>(&state.stdout).unwrap()["pid"]
        .as_u64()
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let want = ids(0).base.to_string();
    assert!(
        uids.split_whitespace().skip(1).all(|u| u == want),
        "PID 1 runs as the range's first id on the host: {uids}"
    );
    let root = driver.rootfs(&spec.id).unwrap();
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(root.path().join("bin/busybox")).unwrap(),
    );
    assert_eq!(owner, ids(0).base, "layers are seen through the map");
    let layer_owner =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(layer.join("bin/busybox")).unwrap());
    assert_eq!(layer_owner, 0, "the layer itself is not touched");
    driver.destroy(&spec.id).unwrap();
    assert_nothing_left(tmp.path());
}

/// The mount table as a process in the mount namespace pinned at `pin` sees it.
fn mounts_seen_in(pin: &Path) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--mount={}", pin.display()))
        .args(["cat", "/proc/self/mountinfo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn each_sandbox_mounts_in_its_own_namespace_and_sees_no_other() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let layer = busybox_layer(tmp.path());
    let driver = driver(tmp.path());
    let (a, b) = (
        conformance::spec("own-a", vec![layer.clone()]),
        conformance::spec("own-b", vec![layer.clone()]),
    );
    driver.create(&a).unwrap();
    driver.create(&b).unwrap();
    let dir = |s: &islo_runtime::SandboxSpec| tmp.path().join("state/sandboxes").join(&s.id.0);
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for s in [&a, &b] {
        let d = dir(s).display().to_string();
        let mine: Vec<&str> = host.lines().filter(|l| l.contains(&d)).collect();
        assert_eq!(
            mine.len(),
            1,
            "the host holds one mount per sandbox: {mine:?}"
        );
        assert!(mine[0].contains(&format!("{d}/mntns ")), "{mine:?}");
    }
    let seen = mounts_seen_in(&dir(&a).join("mntns"));
    let (da, db) = (dir(&a).display().to_string(), dir(&b).display().to_string());
    for own in ["disk", "rootfs"] {
        assert!(
            seen.contains(&format!("{da}/{own} ")),
            "a's {own} in its namespace: {seen}"
        );
    }
    assert!(
        !seen.contains(&db),
        "b's mounts are not in a's namespace: {seen}"
    );
    // Under the state's sandboxes directory, a's namespace holds a's mounts alone. (Counting
    // mounts against the host's proves nothing: a host with no other sandbox holds fewer
    // than a sandbox's namespace.)
    let sandboxes = tmp.path().join("state/sandboxes").display().to_string();
    let others: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains(&sandboxes) && !l.contains(&da))
        .collect();
    assert!(
        others.is_empty(),
        "other sandboxes' mounts in a's: {others:?}"
    );
    // The files of a running sandbox are reached through its namespace.
    let root = driver.rootfs(&a.id).expect("a runs");
    assert!(root.path().join("bin/busybox").is_file());
    drop(root);
    driver.destroy(&a.id).unwrap();
    driver.destroy(&b.id).unwrap();
    assert_nothing_left(tmp.path());
}

fn assert_nothing_left(tmp: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&tmp.display().to_string()),
        "mounts left behind"
    );
    let cgroups = std::fs::read_dir("/sys/fs/cgroup/memory/islo")
        .map(|d| d.count())
        .unwrap_or(0);
    let leftover: Vec<_> = std::fs::read_dir("/sys/fs/cgroup/memory/islo")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("conf-"))
        .collect();
    assert!(
        leftover.is_empty(),
        "cgroups left behind ({cgroups} under islo/)"
    );
    assert!(
        std::fs::read_dir(tmp.join("state/sandboxes"))
            .unwrap()
            .next()
            .is_none()
    );
}
