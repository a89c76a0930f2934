//! The shared conformance suite against the real OCI back end (crun, or runc), plus the
//! host-side checks only it can have: nothing left behind after destroy.
//! Needs root; it fails (never skips) without it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::{Path, PathBuf};
use std::sync::Arc;

use islo_runtime::conformance;
use islo_runtime::host::RealHost;
use islo_runtime::oci::{OciConfig, OciDriver};

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

#[test]
fn oci_driver_passes_conformance_and_leaves_nothing() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the OCI driver tests need root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let layer = busybox_layer(tmp.path());
    let cfg = OciConfig {
        state_dir: tmp.path().join("state"),
        runtime_root: tmp.path().join("runtime"),
        agent_binary: islo_testkit::agent_path(),
        runtime: None,
        favor_dynmods: true,
        fit_host_limits: true,
    };
    let driver = OciDriver::new(cfg, Arc::new(RealHost)).unwrap();
    conformance::run_all(&driver, &|name| {
        conformance::spec(name, vec![layer.clone()])
    });

    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&tmp.path().display().to_string()),
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
        std::fs::read_dir(tmp.path().join("state/sandboxes"))
            .unwrap()
            .next()
            .is_none()
    );
}
