//! The egress gateway enforcing profiles, end to end: a real sandbox, its traffic redirected
//! to islod's gateway, local upstreams with test host names. Allow lists, globs, paths,
//! methods, first match, reorder and rule changes reaching a running sandbox; rate limits;
//! credentials injected and placeholders swapped only where a rule allows; the decision log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::gateway::{curl, log_json, rule, set_secret, start_bound, with_upstream};
use common::stdout;

#[test]
fn deny_by_default_allows_exactly_its_rules() {
    let (env, up, _certs) = with_upstream();
    env.ok(&[
        "gateway",
        "create",
        "--name",
        "strict",
        "--default-action",
        "deny",
    ]);
    let up_rule = rule(&env, "strict", &["--host", "UP.test", "--priority", "10"]);
    rule(
        &env,
        "strict",
        &[
            "--host",
            "*.vendor.test",
            "--path",
            "/echo/v1/*",
            "--method",
            "GET",
            "--priority",
            "20",
        ],
    );
    start_bound(&env, "box", "strict");
    let (h, s) = (up.http.to_string(), up.https.to_string());

    // Plain HTTP and HTTPS (TLS terminated with the installation's CA, which the sandbox
    // trusts, and re-originated with the upstream's certificate verified).
    let (code, _) = curl(&env, "box", &[&format!("http://up.test:{h}/echo/plain")]);
    assert_eq!(code, 200);
    let (code, _) = curl(&env, "box", &[&format!("https://up.test:{s}/echo/tls")]);
    assert_eq!(code, 200);
    // Through an explicit proxy (CONNECT), too.
    let (code, _) = curl(
        &env,
        "box",
        &[
            "-x",
            "http://any-proxy.test:3128",
            &format!("https://up.test:{s}/echo/connect"),
        ],
    );
    assert_eq!(code, 200);
    // Not listed: 403 naming the default.
    let (code, body) = curl(&env, "box", &[&format!("https://other.test:{s}/echo/x")]);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("default action deny of gateway profile strict"),
        "{body}"
    );
    // Glob, path and method.
    assert_eq!(
        curl(
            &env,
            "box",
            &[&format!("https://api.vendor.test:{s}/echo/v1/models")]
        )
        .0,
        200
    );
    assert_eq!(
        curl(
            &env,
            "box",
            &[&format!("https://api.vendor.test:{s}/echo/v2/models")]
        )
        .0,
        403
    );
    assert_eq!(
        curl(
            &env,
            "box",
            &[
                "-X",
                "POST",
                &format!("https://api.vendor.test:{s}/echo/v1/models")
            ]
        )
        .0,
        403
    );

    // First match wins: a later deny for a path of up.test changes nothing …
    let blocked = format!("https://up.test:{s}/echo/blocked");
    let deny = rule(
        &env,
        "strict",
        &[
            "--host",
            "up.test",
            "--path",
            "/echo/blocked*",
            "--action",
            "deny",
            "--priority",
            "30",
        ],
    );
    assert_eq!(curl(&env, "box", &[&blocked]).0, 200);
    // … until a reorder puts it first; the running sandbox sees it on its next request.
    env.ok(&[
        "gateway",
        "strict",
        "reorder",
        "--rule",
        &format!("{deny}=5"),
    ]);
    let (code, body) = curl(&env, "box", &[&blocked]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains(&deny), "the body names the rule: {body}");

    // What reached the upstream: exactly the allowed requests.
    let paths: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "/echo/plain",
            "/echo/tls",
            "/echo/connect",
            "/echo/v1/models",
            "/echo/blocked"
        ],
    );

    // Every decision is in the log, with its rule.
    let log = log_json(&env, "box");
    let allowed = log.iter().find(|e| e["path"] == "/echo/tls").unwrap();
    assert_eq!(allowed["action"], "allow");
    assert_eq!(allowed["rule_id"], up_rule.as_str());
    assert_eq!(allowed["scheme"], "https");
    assert_eq!(allowed["host"], "up.test");
    assert!(allowed["bytes_down"].as_u64().unwrap() > 0);
    let denied = log.iter().rfind(|e| e["path"] == "/echo/blocked").unwrap();
    assert_eq!(denied["action"], "deny");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["rule_id"], deny.as_str());
    let table = env.ok(&["gateway", "log", "box"]);
    assert!(
        table.contains("deny") && table.contains("other.test"),
        "{table}"
    );
}

#[test]
fn rate_limit_per_sandbox_per_rule() {
    let (env, up, _certs) = with_upstream();
    env.ok(&[
        "gateway",
        "create",
        "--name",
        "limited",
        "--default-action",
        "deny",
    ]);
    rule(
        &env,
        "limited",
        &["--host", "up.test", "--rate-limit-rpm", "2"],
    );
    start_bound(&env, "box-a", "limited");
    start_bound(&env, "box-b", "limited");
    let url = format!("https://up.test:{}/echo/limited", up.https);
    assert_eq!(curl(&env, "box-a", &[&url]).0, 200);
    assert_eq!(curl(&env, "box-a", &[&url]).0, 200);
    let (code, resp) = curl(&env, "box-a", &[&url]);
    assert_eq!(code, 429, "{resp}");
    let retry: u64 = resp
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no Retry-After: {resp}"));
    assert!((1..=60).contains(&retry), "{retry}");
    // Another sandbox has its own budget.
    assert_eq!(curl(&env, "box-b", &[&url]).0, 200);
    assert_eq!(up.requests().len(), 3);
    let log = log_json(&env, "box-a");
    assert!(
        log.iter()
            .any(|e| e["action"] == "rate_limited" && e["status"] == 429)
    );
}

#[test]
fn credentials_are_injected_and_never_seen_by_the_sandbox() {
    const VENDOR: &str = "sekret-vendor-123";
    const GITHUB: &str = "ghp_realtoken_456";
    let (env, up, _certs) = with_upstream();
    set_secret(&env, "vendor", VENDOR, &["--env", "VENDOR_KEY"]);
    set_secret(&env, "github", GITHUB, &[]);
    let ls = env.ok(&["secret", "ls", "-o", "json"]);
    assert!(
        ls.contains("GITHUB_TOKEN") && !ls.contains(GITHUB) && !ls.contains(VENDOR),
        "{ls}"
    );

    env.ok(&[
        "gateway",
        "create",
        "--name",
        "creds",
        "--default-action",
        "allow",
    ]);
    rule(
        &env,
        "creds",
        &[
            "--host",
            "api.vendor.test",
            "--provider-key",
            "vendor",
            "--auth-mode",
            "header",
            "--auth-header",
            "x-api-key",
        ],
    );
    rule(
        &env,
        "creds",
        &["--host", "up.test", "--provider-key", "github"],
    );
    start_bound(&env, "box", "creds");
    let s = up.https.to_string();

    // A rule's credential arrives though the request carries none.
    assert_eq!(
        curl(
            &env,
            "box",
            &[&format!("https://api.vendor.test:{s}/echo/auth")]
        )
        .0,
        200
    );
    // The credential goes toward the rule's host only, in its own header.
    let token = stdout(&env.islo(&[
        "use",
        "box",
        "--",
        "sh",
        "-c",
        "printf %s \"$GITHUB_TOKEN\"",
    ]));
    assert!(
        token.starts_with("islo_p_") && token.ends_with("_github"),
        "{token}"
    );
    let hdr = format!("x-token: {token}");
    assert_eq!(
        curl(
            &env,
            "box",
            &["-H", &hdr, &format!("https://up.test:{s}/echo/swap")]
        )
        .0,
        200
    );
    assert_eq!(
        curl(
            &env,
            "box",
            &["-H", &hdr, &format!("https://other.test:{s}/echo/keep")]
        )
        .0,
        200
    );
    let reqs = up.requests();
    let find = |p: &str| reqs.iter().find(|r| r["path"] == p).unwrap()["headers"].clone();
    let header = |h: &serde_json::Value, name: &str| -> Option<String> {
        h.as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str().unwrap().to_string())
    };
    assert_eq!(
        header(&find("/echo/auth"), "x-api-key").as_deref(),
        Some(VENDOR)
    );
    let swapped = find("/echo/swap");
    assert_eq!(
        header(&swapped, "x-token").as_deref(),
        Some(token.as_str()),
        "only the header that carries credentials is swapped"
    );
    assert_eq!(
        header(&swapped, "authorization"),
        Some(format!("Bearer {GITHUB}"))
    );
    let kept = find("/echo/keep");
    assert_eq!(
        header(&kept, "x-token").as_deref(),
        Some(token.as_str()),
        "another host gets the placeholder"
    );
    assert_eq!(header(&kept, "authorization"), None);

    // Nowhere in the sandbox: env, files, any process's environ. (The pattern is passed
    // encoded, so the searching command line does not contain it.)
    for secret in [VENDOR, GITHUB] {
        let b64 = base64_encode(secret.as_bytes());
        let script = format!(
            "S=$(printf %s {b64} | base64 -d); env | grep -cF \"$S\"; \
             grep -rlsF \"$S\" /proc/[0-9]*/environ /etc /root /home /tmp /workspace /var 2>/dev/null | grep -v '^/proc/self' ; true"
        );
        let o = env.islo(&[
            "use",
            "box",
            "--run-as-user",
            "root",
            "--",
            "sh",
            "-c",
            &script,
        ]);
        assert_eq!(
            stdout(&o).trim(),
            "0",
            "secret visible in the sandbox: {}",
            stdout(&o)
        );
    }
    // Nor in islod's log, the audit log or the gateway's log.
    let mut seen = std::fs::read_to_string(env.state().join("islod.log")).unwrap_or_default();
    let sessions: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["logs", "box", "--type", "exec", "-o", "json"])).unwrap();
    assert!(!sessions.is_empty());
    for sess in &sessions {
        seen.push_str(&env.ok(&["logs", "box", sess["exec_id"].as_str().unwrap()]));
    }
    seen.push_str(&env.ok(&["gateway", "log", "box", "-o", "json"]));
    for secret in [VENDOR, GITHUB] {
        assert!(!seen.contains(secret), "secret {secret} in a log");
    }
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The issuer of the certificate a sandbox's TLS client is shown for `url` (not verified).
fn issuer_seen(env: &common::Env, sandbox: &str, url: &str) -> String {
    let o = env.islo(&[
        "use",
        sandbox,
        "--",
        "curl",
        "-sSk",
        "-v",
        "-o",
        "/dev/null",
        url,
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    err.lines()
        .find_map(|l| l.trim_start_matches("* ").trim().strip_prefix("issuer: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no certificate for {url}: {err}"))
}

#[test]
fn tls_when_needed_passes_host_decided_flows_through_undecrypted() {
    let (env, up, _certs) = with_upstream();
    env.ok(&[
        "gateway",
        "create",
        "--name",
        "quick",
        "--default-action",
        "deny",
        "--tls-inspection",
        "when_needed",
    ]);
    assert!(
        env.ok(&["gateway", "quick"])
            .contains("TLS inspection:  when_needed")
    );
    rule(&env, "quick", &["--host", "up.test"]);
    start_bound(&env, "fast", "quick");
    let url = format!("https://up.test:{}/echo/spliced", up.https);
    // Passed through: the sandbox sees the upstream's own certificate, not one the
    // installation's CA made.
    let islo_ca = "islo gateway CA";
    assert!(!issuer_seen(&env, "fast", &url).contains(islo_ca));
    // Denied on its SNI: the flow is closed, no HTTP answer.
    let other = format!("https://other.test:{}/echo/x", up.https);
    assert_eq!(curl(&env, "fast", &["-k", &other]).0, 0);
    let log = log_json(&env, "fast");
    let spliced = log.iter().find(|e| e["host"] == "up.test").unwrap();
    assert_eq!(spliced["action"], "allow");
    assert!(
        spliced["reason"]
            .as_str()
            .unwrap()
            .contains("TLS not inspected")
    );
    assert!(spliced["bytes_down"].as_u64().unwrap() > 0, "{spliced}");
    let denied = log.iter().find(|e| e["host"] == "other.test").unwrap();
    assert_eq!(denied["action"], "deny");
    assert!(
        denied["reason"]
            .as_str()
            .unwrap()
            .contains("TLS not inspected")
    );

    // `always`: decrypted again (the installation's CA signs what the sandbox sees).
    env.ok(&["gateway", "quick", "update", "--tls-inspection", "always"]);
    assert!(issuer_seen(&env, "fast", &url).contains(islo_ca));
    assert_eq!(curl(&env, "fast", &[&url]).0, 200);
    // A rate limit needs the requests: under `when_needed` that host is decrypted too.
    env.ok(&[
        "gateway",
        "quick",
        "update",
        "--tls-inspection",
        "when_needed",
    ]);
    assert!(!issuer_seen(&env, "fast", &url).contains(islo_ca));
    rule(
        &env,
        "quick",
        &[
            "--host",
            "up.test",
            "--rate-limit-rpm",
            "100",
            "--priority",
            "1",
        ],
    );
    assert!(issuer_seen(&env, "fast", &url).contains(islo_ca));
    assert_eq!(curl(&env, "fast", &[&url]).0, 200);
}
