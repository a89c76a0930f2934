//! `islo cp` and the files API through the real CLI and a real sandbox: files and directory
//! trees both ways, owned by the sandbox user; paths and links that would leave the sandbox
//! never reach the host.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::process::Command;

use common::{Env, stderr, stdout};

#[test]
fn files_and_trees_travel_both_ways() {
    let env = Env::new();
    assert!(env.sh("cp1", "true").status.success());
    let local = env.dir.path().join("big.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    env.ok(&[
        "cp",
        local.to_str().unwrap(),
        "cp1:/workspace/in/deep/big.bin",
    ]);
    let inside = env.ok(&[
        "use",
        "cp1",
        "--",
        "sh",
        "-c",
        "ls -ln /workspace/in/deep/big.bin | awk '{print $3, $5}'",
    ]);
    assert_eq!(inside, "1000 3000000\n", "the sandbox user owns it");
    let back = env.dir.path().join("back.bin");
    env.ok(&["cp", "cp1:in/deep/big.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // A directory tree, with a symlink, up and down again.
    let tree = env.dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    std::fs::write(tree.join("top.txt"), "top\n").unwrap();
    std::fs::write(tree.join("sub/deeper/leaf.txt"), "leaf\n").unwrap();
    std::os::unix::fs::symlink("sub/deeper/leaf.txt", tree.join("link")).unwrap();
    env.ok(&["cp", tree.to_str().unwrap(), "cp1:/workspace/tree"]);
    let o = env.ok(&[
        "use",
        "cp1",
        "--",
        "sh",
        "-c",
        "cat /workspace/tree/link /workspace/tree/top.txt; stat -c %U /workspace/tree/sub",
    ]);
    assert_eq!(o, "leaf\ntop\nislo\n");
    let down = env.dir.path().join("down");
    std::fs::create_dir_all(&down).unwrap();
    env.ok(&["cp", "cp1:/workspace/tree", down.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(down.join("tree/sub/deeper/leaf.txt")).unwrap(),
        "leaf\n"
    );
    assert_eq!(
        std::fs::read_link(down.join("tree/link")).unwrap().to_str(),
        Some("sub/deeper/leaf.txt")
    );

    // Missing things exit 3.
    assert_eq!(
        env.islo(&["cp", "cp1:/workspace/nothing", down.to_str().unwrap()])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        env.islo(&["cp", local.to_str().unwrap(), "ghost:/x"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(env.islo(&["cp", "a", "b"]).status.code(), Some(2));
}

#[test]
fn paths_and_links_never_reach_the_host() {
    let env = Env::new();
    let secret_dir = env.dir.path().join("host-secrets");
    std::fs::create_dir_all(&secret_dir).unwrap();
    let secret = secret_dir.join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let s = secret.display().to_string();
    let d = secret_dir.display().to_string();
    let links = format!(
        "ln -s {s} /workspace/abs; ln -s ../../../../../../../..{s} /workspace/climb; \
         ln -s /proc/1/root{s} /workspace/magic; ln -s {d} /workspace/dirlink"
    );
    assert!(env.sh("cp2", &links).status.success());
    let out = env.dir.path().join("out");
    for p in ["abs", "climb", "magic"] {
        let o = env.islo(&["cp", &format!("cp2:/workspace/{p}"), out.to_str().unwrap()]);
        assert_ne!(o.status.code(), Some(0), "{p}: {}", stdout(&o));
        assert!(!out.exists() || std::fs::read_to_string(&out).unwrap() != "host secret\n");
    }
    // Writes through links: a final link is refused; a linked directory stays in the sandbox.
    let payload = env.dir.path().join("payload");
    std::fs::write(&payload, "owned\n").unwrap();
    let o = env.islo(&["cp", payload.to_str().unwrap(), "cp2:/workspace/abs"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    let _ = env.islo(&[
        "cp",
        payload.to_str().unwrap(),
        "cp2:/workspace/dirlink/planted",
    ]);
    assert!(
        !secret_dir.join("planted").exists(),
        "nothing lands on the host"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");

    // The API refuses `..` outright.
    let o = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
        ])
        .arg(env.state().join("islod.sock"))
        .arg("http://islod/sandboxes/cp2/files?path=/workspace/../../etc/passwd")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "422");
}
