//! Shares through the real CLI, islod and agent: a public URL that proxies HTTP and upgraded
//! connections to a port inside, records every request, answers 502 when nothing listens,
//! and stops serving (cutting live connections) when revoked or when the sandbox goes. Also
//! the authenticated `…/proxy/{port}/…` route.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{Env, stderr, stdout};

const PY: &str = "python:3.12-slim";
const SERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/share_server.py"
);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `(status, head, body)` of one HTTP/1.1 request on a fresh connection.
fn request(port: u16, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn start_server(env: &Env, sandbox: &str) {
    let o = env.islo(&["use", sandbox, "-i", PY, "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    env.put_file(sandbox, "/tmp/server.py", &std::fs::read(SERVER).unwrap());
    env.ok(&[
        "use",
        sandbox,
        "--",
        "sh",
        "-c",
        "nohup python3 /tmp/server.py 8080 >/dev/null 2>&1 &",
    ]);
    let probe = "import socket,time\nfor _ in range(100):\n  try:\n    socket.create_connection(('127.0.0.1',8080)).close(); break\n  except OSError: time.sleep(0.05)";
    env.ok(&["use", sandbox, "--", "python3", "-c", probe]);
}

/// `(share_id, path of its URL)`.
fn share(env: &Env, args: &[&str]) -> (String, String) {
    let mut all = vec!["share"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&all)).unwrap();
    let url = v["url"].as_str().unwrap();
    let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
    assert!(path.starts_with("/s/") && path.ends_with('/'), "{url}");
    (v["share_id"].as_str().unwrap().to_string(), path)
}

#[test]
fn a_share_proxies_records_and_ends_when_revoked() {
    let port = free_port();
    let env = Env::with_config(&format!("listen: 127.0.0.1:{port}\n"));
    start_server(&env, "web");
    let (id, base) = share(&env, &["web", "8080", "--ttl", "1h"]);

    // Plain HTTP, no islo credentials; the app's own Authorization passes through.
    let (status, _, body) = request(
        port,
        &format!("{base}hello?x=1"),
        "Authorization: Bearer app\r\n",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "path=/hello?x=1 host=localhost:8080 auth=Bearer app\n"
    );
    let (status, head, _) = request(port, base.trim_end_matches('/'), "");
    assert_eq!(status, 308, "the bare URL redirects to its root: {head}");

    // An upgraded connection (what a WebSocket is) is carried both ways.
    let mut ws = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        ws,
        "GET {base}ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    ws.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let mut rest = Vec::new();
    while !rest.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        ws.read_exact(&mut b).unwrap();
        rest.push(b[0]);
    }
    ws.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    ws.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping");

    // A streaming response stays open...
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {base}stream HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut lines = BufReader::new(stream.try_clone().unwrap());
    let mut seen = String::new();
    while !seen.contains("tick 1") {
        lines.read_line(&mut seen).unwrap();
    }

    // ...until the share is revoked: both live connections end, new requests get 404.
    env.ok(&["unshare", "web", &id]);
    let mut tail = Vec::new();
    lines
        .read_to_end(&mut tail)
        .expect("the stream ends when the share is revoked");
    let mut after = Vec::new();
    ws.read_to_end(&mut after)
        .expect("the tunnel ends when the share is revoked");
    let (status, _, body) = request(port, &format!("{base}hello"), "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("expired or was revoked"), "{body}");
    assert!(!env.ok(&["shares", "web"]).contains(&id));

    // Every request is recorded.
    let recs: serde_json::Value =
        serde_json::from_str(&env.ok(&["shares", "web", "--requests", &id, "-o", "json"])).unwrap();
    let recs = recs.as_array().unwrap();
    let find = |p: &str| {
        recs.iter()
            .find(|r| r["path"] == p)
            .unwrap_or_else(|| panic!("{p} in {recs:?}"))
    };
    assert_eq!(find("/hello")["status"], 200);
    assert!(find("/hello")["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(find("/ws")["status"], 101);
    assert!(find("/ws")["bytes_in"].as_u64().unwrap() >= 4);
    assert!(find("/stream")["bytes_out"].as_u64().unwrap() > 0);
    assert!(
        find("/hello")["client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

#[test]
fn nothing_listening_is_502_bad_input_is_refused_and_rm_ends_shares() {
    let port = free_port();
    let env = Env::with_config(&format!("listen: 127.0.0.1:{port}\n"));
    start_server(&env, "web2");
    let (_, base) = share(&env, &["web2", "9"]);
    let (status, _, body) = request(port, &base, "");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("nothing listening on port 9"), "{body}");

    let o = env.islo(&["share", "web2", "8080", "--ttl", "30s"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 minute to 7 days"), "{}", stderr(&o));
    let o = env.islo(&["share", "nope", "8080"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = env.islo(&["unshare", "web2", "sh_000000000000"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // The authenticated proxy: the owner's key is needed, and it is not passed inside.
    let (status, _, _) = request(port, "/sandboxes/web2/proxy/8080/hello", "");
    assert_eq!(status, 401);
    let key = key(&env);
    let auth = format!("Authorization: Bearer {key}\r\n");
    let (status, _, body) = request(port, "/sandboxes/web2/proxy/8080/hello?y=2", &auth);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "path=/hello?y=2 host=localhost:8080 auth=-\n");

    let (_, live) = share(&env, &["web2", "8080"]);
    assert_eq!(request(port, &format!("{live}hello"), "").0, 200);
    let o = env.islo(&["rm", "-f", "web2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(request(port, &format!("{live}hello"), "").0, 404);
    assert!(
        stderr(&o).contains("Sandbox web2 removed"),
        "{}",
        stderr(&o)
    );
}

/// An API key of the local tenant (the one that owns what the CLI made over the socket).
fn key(env: &Env) -> String {
    let islod = std::path::Path::new(env!("CARGO_BIN_EXE_islo")).with_file_name("islod");
    let o = std::process::Command::new(islod)
        .arg("--state-dir")
        .arg(env.state())
        .args(["keys", "create", "test", "--tenant", "local"])
        .env("ISLOD_CONFIG", env.dir.path().join("islod.yaml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}
