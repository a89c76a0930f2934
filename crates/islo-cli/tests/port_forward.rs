//! `islo port-forward` through the real CLI, islod and agent: HTTP, many parallel connections,
//! half-close, a 200 MB transfer, and clear errors that leave the forward running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Env, stderr, stdout};

const PY: &str = "python:3.12-slim";
const SERVERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/tcp_servers.py"
);

/// A running `islo pf` and the local port it listens on.
struct Forward {
    child: Child,
    port: u16,
    errors: std::sync::mpsc::Receiver<String>,
}

impl Forward {
    fn start(env: &Env, sandbox: &str, remote: u16) -> Self {
        let (mut child, port) = common::port_forward(env, sandbox, remote, Stdio::piped());
        let (tx, errors) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(err).lines() {
                let _ = tx.send(l.unwrap_or_default());
            }
        });
        Self {
            child,
            port,
            errors,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s
    }

    /// Ctrl-C: it stops cleanly.
    fn interrupt(mut self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.child.id() as i32).unwrap(),
            rustix::process::Signal::INT,
        )
        .unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "islo pf exits cleanly on Ctrl-C: {st:?}");
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Start `script` in the background inside the sandbox, detached from the exec.
fn background(env: &Env, sandbox: &str, script: &str) {
    let cmd = format!("nohup sh -c '{script}' >/dev/null 2>&1 &");
    env.ok(&["use", sandbox, "--", "sh", "-c", &cmd]);
}

#[test]
fn forwards_http_many_connections_half_close_and_big_transfers() {
    let env = Env::new();
    let o = env.islo(&["use", "pf", "-i", PY, "--", "mkdir", "-p", "/workspace/www"]);
    assert!(o.status.success(), "{}", stderr(&o));
    env.put_file(
        "pf",
        "/workspace/servers.py",
        &std::fs::read(SERVERS).unwrap(),
    );
    env.ok(&["use", "pf", "--", "sh", "-c",
        "echo hello-pf > /workspace/www/index.html; head -c 200000000 /dev/urandom > /workspace/www/big"]);
    background(
        &env,
        "pf",
        "cd /workspace/www && exec python3 -m http.server 8000 --bind 127.0.0.1",
    );
    background(&env, "pf", "exec python3 /workspace/servers.py 9000 sha");
    common::wait_listening(&env, "pf", 8000);
    common::wait_listening(&env, "pf", 9000);

    let web = Forward::start(&env, "pf", 8000);
    assert!(http_get(web.port, "/index.html").ends_with("hello-pf\n"));

    // 50 connections at once.
    let port = web.port;
    let all: Vec<_> = (0..50)
        .map(|_| std::thread::spawn(move || http_get(port, "/index.html")))
        .collect();
    for h in all {
        let r = h.join().unwrap();
        assert!(
            r.starts_with("HTTP/1.0 200") && r.ends_with("hello-pf\n"),
            "{r}"
        );
    }

    // 200 MB down, byte for byte.
    let want = env.ok(&["use", "pf", "--", "sha256sum", "/workspace/www/big"]);
    let mut s = web.connect();
    write!(s, "GET /big HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &resp[body_at..];
    assert_eq!(body.len(), 200_000_000);
    let got = hex(&sha2_digest(body));
    assert!(want.starts_with(&got), "sha256 {got} vs {want}");

    // Half-close: the server answers only after our end of stream.
    let sha = Forward::start(&env, "pf", 9000);
    let mut s = sha.connect();
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        format!("{} {}\n", hex(&sha2_digest(&data)), data.len())
    );

    web.interrupt();
    sha.interrupt();
}

fn sha2_digest(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn errors_are_clear_and_the_forward_stays_up() {
    let env = Env::new();
    assert!(
        env.islo(&["use", "pe", "-i", PY, "--", "true"])
            .status
            .success()
    );
    let fwd = Forward::start(&env, "pe", 9100);
    // Nothing listening: the connection closes, the reason is printed, the forward stays.
    let mut s = fwd.connect();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    assert!(buf.is_empty());
    let line = fwd.errors.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        line.contains("pe:9100") && line.contains("is anything listening"),
        "{line}"
    );
    background(
        &env,
        "pe",
        "exec python3 -m http.server 9100 --bind 127.0.0.1",
    );
    common::wait_listening(&env, "pe", 9100);
    let mut s = fwd.connect();
    write!(s, "GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");

    // A stopped sandbox: each connection says so.
    env.ok(&["stop", "pe", "-f"]);
    let mut s = fwd.connect();
    let _ = s.read_to_end(&mut Vec::new());
    let line = fwd.errors.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(line.contains("stopped"), "{line}");
    fwd.interrupt();

    // The local port taken, a missing sandbox, a stopped one, a bad port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = taken.local_addr().unwrap().port();
    let o = env.islo(&["pf", "pe", &format!("{p}:80")]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
    env.ok(&["use", "pe", "--", "true"]);
    let o = env.islo(&["pf", "pe", &format!("{p}:80")]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains(&format!("cannot listen on 127.0.0.1:{p}")),
        "{}",
        stderr(&o)
    );
    assert_eq!(env.islo(&["pf", "ghost", "80"]).status.code(), Some(3));
    let o = env.islo(&["port-forward", "pe", "99999"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
}
