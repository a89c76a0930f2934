//! `islo gateway` through the real CLI and islod: profiles and rules made, shown, ordered,
//! changed and removed, with clear errors. (What the gateway enforces is tested with it.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::{Env, stderr};

#[test]
fn profiles_and_rules_from_the_cli() {
    let env = Env::new();
    let ls = env.ok(&["gateway", "ls"]);
    assert!(ls.starts_with("NAME") && ls.contains("default"), "{ls}");
    env.ok(&[
        "gateway",
        "create",
        "--name",
        "strict",
        "--default-action",
        "deny",
        "--internet-access",
        "true",
    ]);
    let gh = env.ok(&[
        "gateway",
        "strict",
        "add-rule",
        "--host",
        "*.github.com",
        "--method",
        "GET",
        "--path",
        "/repos/*",
    ]);
    let deny = env.ok(&[
        "gateway", "strict", "add-rule", "--host", "*", "--action", "deny",
    ]);
    env.ok(&[
        "gateway",
        "strict",
        "add-rule",
        "--host",
        "api.anthropic.com",
        "--provider-key",
        "anthropic",
        "--auth-mode",
        "header",
        "--auth-header",
        "x-api-key",
    ]);
    let show = env.ok(&["gateway", "strict"]);
    assert!(
        show.contains("Default action:  deny")
            && show.contains("*.github.com")
            && show.contains("anthropic"),
        "{show}"
    );

    let rules: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["gateway", "strict", "rule", "ls", "-o", "json"])).unwrap();
    assert_eq!(rules[0]["id"], gh.trim());
    assert_eq!(rules[2]["auth_strategy"]["name"], "x-api-key");
    env.ok(&[
        "gateway",
        "strict",
        "reorder",
        "--rule",
        &format!("{}=1", deny.trim()),
    ]);
    let rules: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["gateway", "strict", "rule", "ls", "-o", "json"])).unwrap();
    assert_eq!(rules[0]["id"], deny.trim(), "reordered");
    env.ok(&[
        "gateway",
        "strict",
        "update-rule",
        gh.trim(),
        "--rate-limit-rpm",
        "30",
    ]);
    env.ok(&["gateway", "strict", "rm-rule", deny.trim()]);
    env.ok(&["gateway", "strict", "update", "--description", "allowlist"]);
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["gateway", "strict", "-o", "json"])).unwrap();
    assert_eq!(
        (
            json["description"].as_str(),
            json["rules"].as_array().unwrap().len()
        ),
        (Some("allowlist"), 2)
    );
    assert_eq!(json["rules"][0]["rate_limit_rpm"], 30);

    // Errors: bad values are usage errors; unknown profiles exit 3; a bad rule says why.
    assert_eq!(
        env.islo(&[
            "gateway",
            "create",
            "--name",
            "x",
            "--default-action",
            "maybe"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(env.islo(&["gateway", "ghost"]).status.code(), Some(3));
    let o = env.islo(&[
        "gateway", "strict", "add-rule", "--host", "x.com", "--path", "no-slash",
    ]);
    assert!(stderr(&o).contains("must start with /"), "{}", stderr(&o));
    assert_eq!(
        env.islo(&["gateway", "strict", "rm"]).status.code(),
        Some(2),
        "no confirmation, no removal"
    );
    env.ok(&["gateway", "strict", "rm", "-f"]);
    assert_eq!(env.islo(&["gateway", "strict"]).status.code(), Some(3));
}
