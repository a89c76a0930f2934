//! `--source` and islo.yaml `sources`: repositories cloned at creation into
//! `/workspace/<repo>` as the sandbox user, through the gateway (its rules apply), from a
//! local HTTPS git server standing in for GitHub (`github_base_url`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::upstream::{Certs, Upstream, gateway_config, make_repos};
use common::{Env, stderr, stdout};

struct Git {
    _root: tempfile::TempDir,
    up: Upstream,
    _certs: Certs,
    env: Env,
}

fn git_env() -> Git {
    let certs = Certs::signed();
    let root = tempfile::tempdir().unwrap();
    let content = make_repos(root.path());
    let up = Upstream::start(&certs, "127.0.0.1", Some(&content));
    let env = Env::with_gateway(
        &format!("github_base_url: https://git.test:{}\n", up.https),
        &gateway_config(&certs),
    );
    Git {
        _root: root,
        up,
        _certs: certs,
        env,
    }
}

#[test]
fn sources_are_cloned_at_creation_as_the_sandbox_user() {
    let g = git_env();
    let env = &g.env;
    let other = format!("https://git.test:{}/repo.git", g.up.https);
    let o = env.islo(&[
        "use",
        "proj",
        "-i",
        &env.debian(),
        "--source",
        "github://acme/demo:feature",
        "--source",
        &other,
        "--",
        "sh",
        "-c",
        "pwd; cat branch.txt; cat /workspace/repo/hello.txt; stat -c %U /workspace/demo/hello.txt",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "/workspace/demo",
        "the workdir is the first repository's root"
    );
    assert_eq!(lines[1], "on the feature branch");
    assert_eq!(lines[2], "hello through the gateway");
    assert_eq!(lines[3], "islo");
    // Only at creation: reconnecting does not clone again.
    let before = g.up.requests().len();
    env.ok(&[
        "use",
        "proj",
        "--source",
        "github://acme/demo",
        "--",
        "true",
    ]);
    assert_eq!(g.up.requests().len(), before);
    // The clones went through the gateway, which logged them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = env.ok(&["gateway", "log", "proj", "-o", "json"]);
    assert!(log.contains("/acme/demo.git/info/refs"), "{log}");
}

#[test]
fn islo_yaml_sources_and_failures() {
    let g = git_env();
    let env = &g.env;
    std::fs::write(
        env.dir.path().join("islo.yaml"),
        "sources:\n  - {url: github://acme/demo, branch: feature}\n",
    )
    .unwrap();
    let out = env.ok(&["use", "yaml-proj", "-i", &env.debian(), "--", "ls"]);
    assert!(out.contains("branch.txt"), "{out}");
    std::fs::remove_file(env.dir.path().join("islo.yaml")).unwrap();

    // A missing repository fails the create, says why, and leaves nothing.
    let o = env.islo(&[
        "use",
        "broken",
        "-i",
        &env.debian(),
        "--source",
        "github://acme/missing",
        "--",
        "true",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("cloning https://git.test") && err.contains("acme/missing"),
        "{err}"
    );
    let ls = env.ok(&["ls", "-o", "json"]);
    assert!(!ls.contains("broken"), "{ls}");
    // Unless asked to keep it: then it is there, failed, with the reason.
    let o = env.islo(&[
        "use",
        "kept",
        "-i",
        &env.debian(),
        "--keep-failed",
        "--source",
        "github://acme/missing",
        "--",
        "true",
    ]);
    assert!(!o.status.success());
    let st: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "kept", "-o", "json"])).unwrap();
    assert_eq!(st["status"], "failed", "{st}");
    assert!(
        st["status_reason"]
            .as_str()
            .unwrap()
            .contains("acme/missing"),
        "{st}"
    );
    env.ok(&["rm", "kept", "-f"]);

    // The gateway's rules apply to clones.
    env.ok(&[
        "gateway",
        "create",
        "--name",
        "closed",
        "--default-action",
        "deny",
    ]);
    let o = env.islo(&[
        "use",
        "denied",
        "-i",
        &env.debian(),
        "--gateway-profile",
        "closed",
        "--source",
        "github://acme/demo",
        "--",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));

    // Bad sources are refused before anything is made.
    let o = env.islo(&[
        "use",
        "bad-src",
        "--source",
        "git@github.com:o/r.git",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("github://owner/repo"), "{}", stderr(&o));
}
