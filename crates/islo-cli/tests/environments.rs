//! Environments end to end: variables and `sandbox_env` secrets in every command's env,
//! `gateway_injected` secrets added by the gateway toward their rule only (the sandbox holds
//! a placeholder, never the value), the tenant's default, islo.yaml's `environment:`, updates
//! reaching running sandboxes, and clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::gateway::{curl, with_upstream};
use common::{stderr, stdout};

const TOKEN: &str = "env-sekret-789";

fn header(reqs: &[serde_json::Value], path: &str, name: &str) -> Option<String> {
    let r = reqs
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("{path}"));
    r["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str().unwrap().to_string())
}

#[test]
fn environments_give_variables_and_gateway_held_secrets() {
    let (env, up, _certs) = with_upstream();
    let s = up.https.to_string();
    let spec = format!("VENDOR_TOKEN={TOKEN};host=api.vendor.test;path=/echo/v1/**;methods=GET");
    env.ok(&[
        "environment",
        "create",
        "dev",
        "--variable",
        "STAGE=dev",
        "--secret",
        "DB_PASSWORD=pw1",
        "--gateway-secret",
        &spec,
    ]);
    let shown = env.ok(&["environment", "get", "dev", "-o", "json"]);
    assert!(!shown.contains(TOKEN) && !shown.contains("pw1"), "{shown}");
    assert!(shown.contains("\"has_value\": true"), "{shown}");

    let o = env.islo(&[
        "use",
        "box",
        "-i",
        &env.debian(),
        "--environment",
        "dev",
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$STAGE\" \"$DB_PASSWORD\" \"$VENDOR_TOKEN\"",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let parts: Vec<&str> = out.split('|').collect();
    assert_eq!(&parts[..2], ["dev", "pw1"]);
    let placeholder = parts[2];
    assert!(
        placeholder.starts_with("islo_p_") && !placeholder.contains(TOKEN),
        "{placeholder}"
    );
    let grep = env.islo(&[
        "use",
        "box",
        "--",
        "sh",
        "-c",
        &format!("grep -rs {TOKEN} /proc/*/environ /etc /workspace; echo done"),
    ]);
    assert_eq!(stdout(&grep).trim(), "done", "the value is nowhere inside");

    // The gateway adds it toward its rule (host, path, method), as a bearer token.
    let auth = format!("Authorization: Bearer {placeholder}");
    let url = |p: &str| format!("https://api.vendor.test:{s}{p}");
    assert_eq!(curl(&env, "box", &[&url("/echo/v1/in")]).0, 200);
    assert_eq!(
        curl(&env, "box", &["-H", &auth, &url("/echo/v2/out")]).0,
        200
    );
    assert_eq!(
        curl(&env, "box", &["-X", "POST", &url("/echo/v1/post")]).0,
        200
    );
    assert_eq!(
        curl(
            &env,
            "box",
            &[
                "-H",
                &auth,
                &format!("https://other.test:{s}/echo/v1/elsewhere")
            ]
        )
        .0,
        200
    );
    let reqs = up.requests();
    assert_eq!(
        header(&reqs, "/echo/v1/in", "authorization"),
        Some(format!("Bearer {TOKEN}"))
    );
    let kept = header(&reqs, "/echo/v2/out", "authorization").unwrap();
    assert!(!kept.contains(TOKEN), "outside the rule's path: {kept}");
    assert_eq!(
        header(&reqs, "/echo/v1/post", "authorization"),
        None,
        "not the rule's method"
    );
    let other = header(&reqs, "/echo/v1/elsewhere", "authorization").unwrap();
    assert!(!other.contains(TOKEN), "another host: {other}");

    // An update reaches the running sandbox; secrets keep their values.
    env.ok(&[
        "environment",
        "update",
        "dev",
        "--variable",
        "STAGE=two",
        "--unset",
        "DB_PASSWORD",
    ]);
    let o = env.ok(&[
        "use",
        "box",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$STAGE\" \"${DB_PASSWORD:-none}\"",
    ]);
    assert_eq!(o, "two|none");
    assert_eq!(curl(&env, "box", &[&url("/echo/v1/again")]).0, 200);
    assert_eq!(
        header(&up.requests(), "/echo/v1/again", "authorization"),
        Some(format!("Bearer {TOKEN}"))
    );
}

#[test]
fn defaults_project_files_and_bad_input() {
    let (env, _up, _certs) = with_upstream();
    let bb = env.busybox();
    env.ok(&[
        "environment",
        "create",
        "base",
        "--variable",
        "FROM=base",
        "--default",
    ]);
    env.ok(&["environment", "create", "other", "--variable", "FROM=other"]);
    // The default applies when none is named; islo.yaml names one.
    assert_eq!(
        env.ok(&[
            "use",
            "d1",
            "-i",
            &bb,
            "--",
            "sh",
            "-c",
            "printf %s \"$FROM\""
        ]),
        "base"
    );
    std::fs::write(env.dir.path().join("islo.yaml"), "environment: other\n").unwrap();
    assert_eq!(
        env.ok(&[
            "use",
            "d2",
            "-i",
            &bb,
            "--",
            "sh",
            "-c",
            "printf %s \"$FROM\""
        ]),
        "other"
    );
    std::fs::remove_file(env.dir.path().join("islo.yaml")).unwrap();
    env.ok(&["environment", "default", "other"]);
    let ls = env.ok(&["environment", "ls", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let defaults: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["is_default"] == true)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(defaults, ["other"]);

    // Bad input: clear, with the documented codes; nothing half-made.
    let o = env.islo(&[
        "use",
        "d3",
        "-i",
        &bb,
        "--environment",
        "nope",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!env.ok(&["ls"]).contains("d3"));
    let o = env.islo(&["environment", "create", "base"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    let o = env.islo(&["environment", "create", "x", "--variable", "1BAD=v"]);
    assert!(stderr(&o).contains("1BAD"), "{}", stderr(&o));
    let o = env.islo(&["environment", "create", "x", "--gateway-secret", "T=v"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    env.ok(&["environment", "rm", "other"]);
    let o = env.islo(&["environment", "get", "other"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}
