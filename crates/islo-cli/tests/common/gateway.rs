//! Gateway helpers for tests: curl in a sandbox, rules, secrets and the decision log.

use super::{Env, stderr, stdout};

/// `curl` in the sandbox: (status, headers + body).
pub fn curl(env: &Env, sandbox: &str, args: &[&str]) -> (u16, String) {
    let mut a = vec![
        "use",
        sandbox,
        "--",
        "curl",
        "-sS",
        "-m",
        "20",
        "-D",
        "-",
        "-w",
        "\n%{http_code}",
    ];
    a.extend_from_slice(args);
    let o = env.islo(&a);
    let out = stdout(&o);
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    let code = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl {args:?}: {out}\n{}", stderr(&o)));
    (code, body.to_string())
}

/// Make a rule and return its id.
/// Start sandbox `name` (the Debian test image) bound to gateway profile `profile`.
pub fn start_bound(env: &Env, name: &str, profile: &str) {
    env.ok(&[
        "use",
        name,
        "-i",
        &env.debian(),
        "--gateway-profile",
        profile,
        "--",
        "true",
    ]);
}

pub fn rule(env: &Env, profile: &str, args: &[&str]) -> String {
    let mut a = vec!["gateway", profile, "add-rule"];
    a.extend_from_slice(args);
    env.ok(&a).trim().to_string()
}

/// `islo secret set NAME --from-stdin EXTRA…` with `value` on stdin.
pub fn set_secret(env: &Env, name: &str, value: &str, extra: &[&str]) {
    let mut args = vec!["secret", "set", name, "--from-stdin"];
    args.extend_from_slice(extra);
    let mut c = env.islo_cmd();
    c.args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{value}\n").as_bytes(),
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The sandbox's decisions, oldest first (at most `tail`).
pub fn log_json_tail(env: &Env, sandbox: &str, tail: usize) -> Vec<serde_json::Value> {
    // Decisions are written by a background writer; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.ok(&[
        "gateway",
        "log",
        sandbox,
        "-o",
        "json",
        "--tail",
        &tail.to_string(),
    ])
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

pub fn log_json(env: &Env, sandbox: &str) -> Vec<serde_json::Value> {
    log_json_tail(env, sandbox, 1000)
}

/// An installation whose gateway resolves the test hosts to a local upstream (HTTP and HTTPS
/// with a CA it trusts); keep the certificates for as long as the installation.
pub fn with_upstream() -> (Env, super::upstream::Upstream, super::upstream::Certs) {
    let certs = super::upstream::Certs::signed();
    let up = super::upstream::Upstream::start(&certs, "127.0.0.1", None);
    let env = Env::with_gateway("", &super::upstream::gateway_config(&certs));
    (env, up, certs)
}
