//! Snapshots through the real CLI and real sandboxes: a tree with every file kind survives
//! save and restore, many sandboxes share one snapshot, a save while a process writes is
//! consistent, snapshots in use cannot be removed, and export/import moves one between
//! installations as a real OCI archive.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, stderr, stdout};

const PY: &str = "python:3.12-slim";

/// As root in `sandbox`: run `script` with sh, require success, return stdout.
#[track_caller]
fn root_sh(env: &Env, sandbox: &str, script: &str) -> String {
    let o = env.root_sh(sandbox, script);
    assert!(o.status.success(), "{script}: {}", stderr(&o));
    stdout(&o)
}

fn snapshot_json(env: &Env, name: &str) -> serde_json::Value {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["snapshot", "ls", "-o", "json"])).unwrap();
    all.into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no snapshot {name}"))
}

const MAKE_TREE: &str = "set -e; cd /workspace; mkdir -p tree/sub; echo data > tree/file; \
    chmod 640 tree/file; chown 1000:1000 tree/file; ln tree/file tree/hard; ln -s file tree/sym; \
    mkfifo tree/fifo; chmod 1777 tree/sub; head -c 3000000 /dev/urandom > tree/big; \
    python3 -c \"import os; os.setxattr('/workspace/tree/file', 'user.note', b'kept')\"; \
    rm /etc/issue; rm -rf /usr/share/doc; mkdir /usr/share/doc; echo new > /usr/share/doc/only";

const DESCRIBE: &str = "W=$(pwd); cd /; find /workspace/tree /usr/share/doc -exec stat -c '%n %f %u %g %h %s %Y' {} + | sort; \
    sha256sum /workspace/tree/file /workspace/tree/big; \
    python3 -c \"import os; print(os.getxattr('/workspace/tree/file', 'user.note'))\"; \
    test -e /etc/issue && echo issue-present || echo issue-gone; echo \"$GREETING $W\"";

#[test]
fn every_file_kind_round_trips_and_settings_are_kept() {
    let env = Env::new();
    let created = env.islo(&[
        "use",
        "src",
        "-i",
        PY,
        "-e",
        "GREETING=hi",
        "--workdir",
        "/workspace/tree",
        "--",
        "true",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    root_sh(&env, "src", MAKE_TREE);
    let before = root_sh(&env, "src", DESCRIBE);
    assert!(
        before.contains("issue-gone") && before.contains("b'kept'"),
        "{before}"
    );
    assert!(before.contains("hi /workspace/tree"), "{before}");

    let o = env.islo(&["snapshot", "save", "src", "--name", "tree"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Saved snapshot tree"), "{}", stderr(&o));
    let s = snapshot_json(&env, "tree");
    assert_eq!(s["status"], "ready");
    let size = s["size_bytes"].as_u64().unwrap();
    assert!(
        (3_000_000..4_000_000).contains(&size),
        "it stores what it adds: {size}"
    );
    assert!(
        s["checksum_sha256"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // The source's later changes and removal do not reach the snapshot.
    root_sh(&env, "src", "echo changed > /workspace/tree/file");
    env.ok(&["rm", "-f", "src"]);
    let o = env.islo(&[
        "use",
        "dst",
        "--snapshot",
        "tree",
        "--run-as-user",
        "root",
        "--",
        "sh",
        "-c",
        DESCRIBE,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), before, "the restored tree differs");
    assert!(env.ok(&["status", "dst", "-o", "json"]).contains(PY));
}

#[test]
fn many_sandboxes_share_one_snapshot_and_stay_independent() {
    let env = Env::new();
    assert!(
        env.sh("base", "echo shared > /workspace/base")
            .status
            .success()
    );
    env.ok(&["snapshot", "save", "base", "--name", "fork"]);
    let layers = || {
        std::fs::read_dir(env.state().join("images/layers"))
            .unwrap()
            .count()
    };
    let before = layers();
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let mut cmd = env.islo_cmd();
            cmd.args([
                "use",
                &format!("f{i}"),
                "--snapshot",
                "fork",
                "--",
                "sh",
                "-c",
                &format!("echo {i} >> /workspace/mine; cat /workspace/base /workspace/mine"),
            ]);
            std::thread::spawn(move || cmd.output().unwrap())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let o = h.join().unwrap();
        assert!(o.status.success(), "f{i}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("shared\n{i}\n"));
    }
    assert_eq!(
        layers(),
        before,
        "sandboxes from a snapshot share its layers"
    );

    // A snapshot of a fork adds only the fork's own changes.
    assert!(
        env.sh("f3", "head -c 1000000 /dev/urandom > /workspace/more")
            .status
            .success()
    );
    env.ok(&["snapshot", "save", "f3", "--name", "fork2"]);
    let size = snapshot_json(&env, "fork2")["size_bytes"].as_u64().unwrap();
    assert!((1_000_000..1_200_000).contains(&size), "{size}");
    let o = env.islo(&[
        "use",
        "gg",
        "--snapshot",
        "fork2",
        "--",
        "cat",
        "/workspace/base",
        "/workspace/mine",
    ]);
    assert_eq!(stdout(&o), "shared\n3\n", "{}", stderr(&o));
}

#[test]
fn a_save_while_a_process_writes_is_one_instant() {
    let env = Env::new();
    assert!(env.sh("wr", "true").status.success());
    let mut cmd = env.islo_cmd();
    cmd.args([
        "use", "wr", "--", "sh", "-c",
        "i=0; while [ ! -e /workspace/stop ]; do echo line-$i-end >> /workspace/log; i=$((i+1)); done; echo done",
    ]);
    let writer = std::thread::spawn(move || cmd.output().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(700));
    env.ok(&["snapshot", "save", "wr", "--name", "mid"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.ok(&["use", "wr", "--", "touch", "/workspace/stop"]);
    let o = writer.join().unwrap();
    let total = env.ok(&["use", "wr", "--", "wc", "-l", "/workspace/log"]);
    let total: usize = total.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(stdout(&o), "done\n", "the writer resumes: {}", stderr(&o));

    let log = env.ok(&[
        "use",
        "rd",
        "--snapshot",
        "mid",
        "--",
        "cat",
        "/workspace/log",
    ]);
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() < total,
        "cut mid-run: {} of {total} lines",
        lines.len()
    );
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            *l,
            format!("line-{i}-end"),
            "line {i} is whole and in order"
        );
    }
    assert!(log.ends_with('\n'));
}

#[test]
fn in_use_names_and_missing_things_are_refused_clearly() {
    let env = Env::new();
    assert!(env.sh("sa", "echo x > /workspace/x").status.success());
    env.ok(&["stop", "sa", "-f"]);
    env.ok(&["snapshot", "save", "sa", "--name", "from-stopped"]);
    let o = env.islo(&["snapshot", "save", "sa", "--name", "from-stopped"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = env.islo(&["snapshot", "save", "sa", "--name", "bad/name"]);
    assert!(
        stderr(&o).contains("invalid snapshot name"),
        "{}",
        stderr(&o)
    );

    env.ok(&["use", "sb", "--snapshot", "from-stopped", "--", "true"]);
    let o = env.islo(&["snapshot", "rm", "from-stopped", "-f"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("in use by sandbox(es) sb"),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.ok(&["use", "sb", "--", "cat", "/workspace/x"]), "x\n");
    let o = env.islo(&["use", "sb", "--snapshot", "from-stopped", "--", "true"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an existing sandbox is never overwritten"
    );
    let o = env.islo(&["snapshot", "rm", "from-stopped"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "no confirmation without a terminal"
    );
    env.ok(&["rm", "-f", "sb"]);
    env.ok(&["snapshot", "rm", "from-stopped", "-f"]);
    assert!(env.ok(&["snapshot", "ls", "-o", "json"]).trim() == "[]");

    assert_eq!(
        env.islo(&["snapshot", "save", "ghost"]).status.code(),
        Some(3)
    );
    let o = env.islo(&["use", "sc", "--snapshot", "ghost", "--", "true"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("snapshot ghost"), "{}", stderr(&o));
    assert!(
        env.islo(&["status", "sc"]).status.code() == Some(3),
        "nothing was left"
    );
    assert_eq!(
        env.islo(&["snapshot", "rm", "ghost", "-f"]).status.code(),
        Some(3)
    );
    let o = env.islo(&["snapshot", "export", "ghost", "--to", "docker://x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn export_and_import_move_a_snapshot_to_another_installation() {
    let env = Env::new();
    assert!(
        env.sh("ex", "echo moved > /workspace/m; ln -s m /workspace/l")
            .status
            .success()
    );
    env.ok(&["snapshot", "save", "ex", "--name", "travel"]);
    let archive = env.dir.path().join("travel.tar");
    let to = format!("oci-archive:{}", archive.display());
    env.ok(&["snapshot", "export", "travel", "--to", &to]);
    // A real OCI tool reads it.
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", &to])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert!(v["Layers"].as_array().unwrap().len() >= 2, "{v}");

    let other = Env::new();
    let o = other.islo(&["snapshot", "import", &to, "--name", "arrived"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = other.islo(&[
        "use",
        "xx",
        "--snapshot",
        "arrived",
        "--",
        "sh",
        "-c",
        "cat /workspace/l; ls /bin/busybox",
    ]);
    assert_eq!(stdout(&o), "moved\n/bin/busybox\n", "{}", stderr(&o));
    let o = other.islo(&["snapshot", "import", &to, "--name", "arrived"]);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    // Any OCI tool can push it on; islo then runs it as an image.
    let image = format!("{}/islo-test/snapshot:travel", env.registry);
    let push = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            &to,
            &format!("docker://{image}"),
        ])
        .output()
        .unwrap();
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let o = other.islo(&["use", "pushed", "-i", &image, "--", "cat", "/workspace/m"]);
    assert_eq!(stdout(&o), "moved\n", "{}", stderr(&o));

    // A tampered archive is refused.
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.windows(5).position(|w| w == b"moved").unwrap();
    bytes[at] = b'M';
    let bad = env.dir.path().join("bad.tar");
    std::fs::write(&bad, bytes).unwrap();
    let o = other.islo(&["snapshot", "import", bad.to_str().unwrap(), "--name", "bad"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("has digest"), "{}", stderr(&o));
}
