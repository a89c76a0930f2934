//! The CLI's bookkeeping commands end to end: stop, resume and rm on several sandboxes (by
//! name or id, nothing done when one is unknown), `ls --all`, `islo api-key` and `islo api`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, stderr, stdout};

fn names_with(env: &Env, args: &[&str], status: &str) -> Vec<String> {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&all)).unwrap();
    let mut n: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == status)
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn lifecycle_commands_take_several_sandboxes_by_name_or_id() {
    let env = Env::new();
    let bb = env.busybox();
    for n in ["m1", "m2", "m3"] {
        env.ok(&["use", n, "-i", &bb, "--", "true"]);
    }
    let id2 = env.id_of("m2");

    // One unknown: nothing is done, exit 3.
    let o = env.islo(&["stop", "m1", "nope", "-f"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(names_with(&env, &["ls"], "running"), ["m1", "m2", "m3"]);

    env.ok(&["stop", "m1", &id2, "-f"]);
    assert_eq!(names_with(&env, &["ls"], "stopped"), ["m1", "m2"]);
    env.ok(&["resume", "m1", "m2"]);
    assert_eq!(names_with(&env, &["ls"], "running"), ["m1", "m2", "m3"]);

    let o = env.islo(&["rm", "m1", "m2"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "no terminal, no -f: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("sandboxes m1, m2"), "{}", stderr(&o));
    env.ok(&["rm", "-f", "m1", &id2]);
    assert_eq!(names_with(&env, &["ls"], "running"), ["m3"]);
    assert!(names_with(&env, &["ls"], "deleted").is_empty());
    assert_eq!(names_with(&env, &["ls", "--all"], "deleted"), ["m1", "m2"]);
}

#[test]
fn api_keys_and_raw_calls() {
    let env = Env::new();
    let o = env.islo(&["api-key", "create", "ci", "--expires", "30"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let secret = stdout(&o).trim().to_string();
    assert!(secret.starts_with("islo_key_"), "{secret}");
    let keys: serde_json::Value =
        serde_json::from_str(&env.ok(&["key", "ls", "-o", "json"])).unwrap();
    let k = &keys.as_array().unwrap()[0];
    assert_eq!(
        (k["name"].as_str(), k["status"].as_str()),
        (Some("ci"), Some("active"))
    );
    assert!(
        !keys.to_string().contains(&secret),
        "the secret is never listed"
    );
    let id = k["id"].as_str().unwrap();

    // Written to a file instead: 0600, nothing on stdout.
    let file = env.dir.path().join("key.txt");
    let o = env.islo(&[
        "api-key",
        "create",
        "f",
        "--output-file",
        file.to_str().unwrap(),
    ]);
    assert!(
        o.status.success() && stdout(&o).is_empty(),
        "{}",
        stderr(&o)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    env.ok(&["api-key", "deactivate", id]);
    let keys = env.ok(&["api", "/api-keys"]);
    assert!(keys.contains("\"inactive\""), "{keys}");
    env.ok(&["api-key", "rm", id]);
    let o = env.islo(&["api-key", "rm", id]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // Raw calls: the body printed, the exit code from the status.
    let o = env.islo(&["api", "/api-keys", "-d", "{\"name\":\"\"}"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stdout(&o).contains("VALIDATION_ERROR"), "{}", stdout(&o));
    let o = env.islo(&["api", "/nope"]);
    assert_eq!(o.status.code(), Some(3));
    let o = env.islo(&["api", "/api-keys", "-d", "not json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn doctor_says_what_is_wrong_and_what_to_do() {
    let env = Env::new();
    // A mirror nothing answers, besides the test registry.
    let cfg = env.dir.path().join("islod.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen(
        "registry_mirrors:\n",
        "registry_mirrors:\n  quay.io: http://127.0.0.1:1\n",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let o = env.islo(&["doctor", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let check = |name: &str, detail: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name && c["detail"].as_str().unwrap().contains(detail))
            .unwrap_or_else(|| panic!("{name} {detail}: {report}"))
            .clone()
    };
    for name in [
        "server",
        "auth",
        "runtime",
        "user_namespaces",
        "cgroups",
        "nftables",
        "gateway",
    ] {
        assert_eq!(check(name, "")["ok"], true, "{name}: {report}");
    }
    // The disk check judges this host's free space, whatever it is (its rule has a unit test).
    let disk = check("disk", &env.state().display().to_string());
    assert!(
        disk["detail"].as_str().unwrap().contains("GiB free"),
        "{disk}"
    );
    assert_eq!(disk["ok"] == false, disk.get("fix").is_some(), "{disk}");
    assert_eq!(check("registry_mirror", "docker.io")["ok"], true);
    let dead = check("registry_mirror", "quay.io");
    assert_eq!(dead["ok"], false);
    assert!(dead["fix"].as_str().unwrap().contains("registry_mirrors"));
    assert_eq!(
        o.status.code(),
        Some(125),
        "a failed check fails the command"
    );

    // A broken project file is named, with the fix, in the human form too.
    std::fs::write(env.dir.path().join("islo.yaml"), "image: [unclosed\n").unwrap();
    let o = env.islo(&["doctor"]);
    let out = stdout(&o);
    assert!(out.lines().any(|l| l.starts_with("FAIL project")), "{out}");
    assert!(out.contains("fix: fix islo.yaml"), "{out}");
}
