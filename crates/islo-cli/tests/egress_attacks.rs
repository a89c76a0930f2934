//! A hostile sandbox against the egress gateway: credentials led out through echoes, plain
//! HTTP or a forged `Host`; deny rules dodged with other spellings of a path; the decision
//! log and islod's descriptors exhausted. Each test performs the attack.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::gateway::{
    curl, log_json, log_json_tail, rule, set_secret, start_bound, with_upstream,
};
use common::{Env, stderr, stdout};

const SECRET: &str = "sekret-value-8c1f9a";

/// The header `name` of a request the upstream logged.
fn header(req: &serde_json::Value, name: &str) -> Option<String> {
    req["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str().unwrap().to_string())
}

fn request<'a>(reqs: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    reqs.iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("{path} never reached the upstream: {reqs:?}"))
}

#[test]
fn credentials_reach_only_their_header_over_tls_and_never_come_back() {
    let (env, up, _certs) = with_upstream();
    // Injected by the gateway itself toward its host, and a placeholder the sandbox uses.
    set_secret(
        &env,
        "vendor",
        SECRET,
        &["--host", "api.vendor.test", "--auth-mode", "bearer"],
    );
    set_secret(
        &env,
        "token",
        "tok-2d4e6f8a0b",
        &["--host", "up.test", "--env", "TOKEN"],
    );
    env.ok(&["use", "box", "-i", &env.debian(), "--", "true"]);
    let (h, s) = (up.http, up.https);

    // An upstream that echoes every header, in its body and its response headers.
    let (code, seen) = curl(
        &env,
        "box",
        &[&format!("https://api.vendor.test:{s}/reflect/tls")],
    );
    assert_eq!(code, 200, "{seen}");
    let arrived = header(request(&up.requests(), "/reflect/tls"), "authorization");
    assert_eq!(
        arrived,
        Some(format!("Bearer {SECRET}")),
        "injected upstream"
    );
    assert!(!seen.contains(SECRET), "the echo handed it back:\n{seen}");
    assert!(seen.contains("x-reflect-authorization: ****"), "{seen}");

    // Not over plain HTTP, where anyone on the path reads it.
    let (code, _) = curl(
        &env,
        "box",
        &[&format!("http://api.vendor.test:{h}/echo/plain")],
    );
    assert_eq!(code, 200);
    let plain = request(&up.requests(), "/echo/plain").clone();
    assert!(!plain.to_string().contains(SECRET), "{plain}");

    // A placeholder is swapped in the credential header only, not in any header.
    let token = stdout(&env.islo(&["use", "box", "--", "sh", "-c", "printf %s \"$TOKEN\""]));
    assert!(token.starts_with("islo_p_"), "{token}");
    let auth = format!("Authorization: Bearer {token}");
    let other = format!("X-Echo: {token}");
    curl(
        &env,
        "box",
        &[
            "-H",
            &auth,
            "-H",
            &other,
            &format!("https://up.test:{s}/echo/swap"),
        ],
    );
    let swapped = request(&up.requests(), "/echo/swap").clone();
    assert_eq!(
        header(&swapped, "authorization").as_deref(),
        Some("Bearer tok-2d4e6f8a0b")
    );
    assert_eq!(header(&swapped, "x-echo"), Some(token.clone()));

    // Domain fronting: an absolute URI for an allowed host with another Host goes out with
    // the URI's host (RFC 9112 §3.2.2).
    let target = format!("http://up.test:{h}/echo/front");
    curl(
        &env,
        "box",
        &[
            "--request-target",
            &target,
            "-H",
            "Host: evil.test",
            &target,
        ],
    );
    let front = request(&up.requests(), "/echo/front").clone();
    assert_eq!(header(&front, "host"), Some(format!("up.test:{h}")));

    // Two Host headers, or one that is not a host, are refused before any decision (raw
    // requests: curl sends one Host whatever it is given).
    let raw = r#"
import socket, ssl, sys
ctx = ssl.create_default_context()
def status(req):
    s = ctx.wrap_socket(socket.create_connection(("api.vendor.test", int(sys.argv[1]))),
                        server_hostname="api.vendor.test")
    s.sendall(req)
    code = s.recv(4096).split(b" ")[1].decode()
    s.close()
    return code
print(status(b"GET /echo/dup HTTP/1.1\r\nHost: api.vendor.test\r\nHost: evil.test\r\n\r\n"))
print(status(b"GET /echo/dup HTTP/1.1\r\nHost: api.vendor.test\xff\r\n\r\n"))
print(status(b"GET /echo/dup HTTP/1.1\r\nHost: evil.test@api.vendor.test\r\n\r\n"))
"#;
    let port = s.to_string();
    let o = env.islo(&["use", "box", "--", "python3", "-c", raw, &port]);
    assert_eq!(stdout(&o), "400\n400\n400\n", "{}", stderr(&o));
    assert!(up.requests().iter().all(|r| r["path"] != "/echo/dup"));
}

#[test]
fn other_spellings_of_a_denied_path_are_denied_too() {
    let (env, up, _certs) = with_upstream();
    env.ok(&[
        "gateway",
        "create",
        "--name",
        "p",
        "--default-action",
        "deny",
    ]);
    rule(
        &env,
        "p",
        &[
            "--host",
            "up.test",
            "--path",
            "/echo/private",
            "--action",
            "deny",
            "--priority",
            "1",
        ],
    );
    rule(
        &env,
        "p",
        &["--host", "up.test", "--path", "/echo/*", "--priority", "2"],
    );
    start_bound(&env, "box", "p");
    let base = format!("https://up.test:{}", up.https);
    let get = |path: &str| curl(&env, "box", &["--path-as-is", &format!("{base}{path}")]).0;

    assert_eq!(get("/echo/public"), 200);
    for p in [
        "/echo/private",
        "/echo/public/../private",
        "/echo/%70rivate",
        "/echo/%2e%2e/echo/private",
        "//echo//private",
        "/echo/./private",
        "/echo/Private",
        "/ECHO/PRIVATE",
        "/echo%2Fprivate",
    ] {
        assert_eq!(get(p), 403, "{p}");
    }
    // `*` stays in its segment, so the allow rule does not reach deeper.
    assert_eq!(get("/echo/public/deeper"), 403);
    // Spellings whose meaning depends on the upstream are refused.
    for p in [
        "/echo/..%2fprivate",
        "/echo/a%5c..%5cprivate",
        "/echo/a%2F%2Fb",
    ] {
        assert_eq!(get(p), 400, "{p}");
    }
    let reached: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reached, ["/echo/public"], "what reached the upstream");
    let log = log_json(&env, "box");
    assert!(
        log.iter()
            .any(|e| e["path"] == "/echo/private" && e["action"] == "deny"),
        "the log shows the normal form"
    );
}

#[test]
fn a_flood_of_long_requests_cannot_fill_the_decision_log() {
    let env = Env::new();
    env.ok(&[
        "gateway",
        "create",
        "--name",
        "shut",
        "--default-action",
        "deny",
    ]);
    start_bound(&env, "box", "shut");
    let db = env.state().join("islod.db");
    let size = || {
        ["", "-wal"]
            .iter()
            .map(|s| std::fs::metadata(format!("{}{s}", db.display())).map_or(0, |m| m.len()))
            .sum::<u64>()
    };
    let before = size();
    // 3,000 denied requests with 60 KB paths on kept-alive connections.
    let flood = r#"
import http.client
path = "/" + "a" * 60000
sent = 0
conn = None
for i in range(3000):
    if conn is None:
        conn = http.client.HTTPConnection("10.1.2.3", 80, timeout=20)
    try:
        conn.request("GET", path + str(i), headers={"Host": "flood.test"})
        conn.getresponse().read()
        sent += 1
    except Exception:
        conn.close()
        conn = None
print(sent)
"#;
    let started = std::time::Instant::now();
    let o = env.islo(&["use", "box", "--", "python3", "-c", flood]);
    let secs = started.elapsed().as_secs_f64();
    let sent: u32 = stdout(&o)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert!(sent > 2500, "the gateway answered {sent} of 3000");
    // After a pause, one more request carries the count of what was dropped.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    env.islo(&[
        "use", "box", "--", "python3", "-c",
        "import http.client as h; c = h.HTTPConnection('10.1.2.3', 80, timeout=20); c.request('GET', '/after'); c.getresponse().read()",
    ]);
    let log = log_json_tail(&env, "box", 100_000);
    // The burst, the steady rate over the flood's time and the pause, and a little more.
    let allowed = 1000.0 + 50.0 * (secs + 2.0) + 10.0;
    assert!(
        (log.len() as f64) < allowed,
        "{} decisions stored in {secs:.1} s",
        log.len()
    );
    assert!(
        log.iter()
            .all(|e| e["path"].as_str().unwrap().len() <= 1024)
    );
    let dropped = log
        .iter()
        .find(|e| e["action"] == "dropped")
        .expect("a dropped-decisions event");
    assert!(
        dropped["reason"]
            .as_str()
            .unwrap()
            .contains("were not logged"),
        "{dropped}"
    );
    let grew = size().saturating_sub(before);
    assert!(grew < 16 << 20, "the database grew by {grew} bytes");
}

#[test]
fn one_sandbox_cannot_take_all_of_islods_connections() {
    let env = Env::new();
    env.ok(&["use", "box", "-i", &env.debian(), "--", "true"]);
    // 400 connections, each with half a request, held open.
    let hold = r#"
import socket, time
socks = []
for i in range(400):
    try:
        s = socket.create_connection(("10.1.2.3", 80), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: slow.test\r\n")
        socks.append(s)
    except OSError:
        pass
time.sleep(1)
alive = 0
for s in socks:
    s.setblocking(False)
    try:
        alive += s.recv(1) != b""
    except BlockingIOError:
        alive += 1
    except OSError:
        pass
print(alive, flush=True)
time.sleep(5)
"#;
    let mut child = env
        .islo_cmd()
        .args(["use", "box", "--", "python3", "-c", hold])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    // While they are held, islod serves everyone else.
    let t = std::time::Instant::now();
    env.ok(&["ls"]);
    assert!(
        t.elapsed().as_secs() < 10,
        "the API was slow: {:?}",
        t.elapsed()
    );
    let o = child.wait_with_output().unwrap();
    let alive: usize = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{line}: {}", stderr(&o)));
    // The rest were reset (some already while connecting, when they came faster than the
    // gateway accepted them).
    assert!(
        (128..=256).contains(&alive),
        "{alive} connections kept for one sandbox"
    );
    let log = log_json(&env, "box");
    assert!(
        log.iter().any(|e| e["reason"]
            .as_str()
            .unwrap_or("")
            .contains("too many connections")),
        "{log:?}"
    );
}
