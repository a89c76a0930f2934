//! Terminal sessions against the real agent binary, run on the host (not as PID 1) with a
//! real pseudo-terminal and a real shell.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use islo_agent::proto::{self, FrameKind, write_json};
use islo_agent::{AgentRequest, AttachRequest, ExecRequest, SessionInfo, SessionSpec, TtySize};

struct Agent {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    child: std::process::Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_islo-agent"))
        .arg(&sock)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "agent did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Agent {
        _dir: dir,
        sock,
        child,
    }
}

fn spec() -> SessionSpec {
    let me = if rustix::process::geteuid().is_root() {
        "root"
    } else {
        "nobody"
    };
    SessionSpec {
        argv: vec!["/bin/sh".into()],
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("TERM".into(), "dumb".into()),
            ("PS1".into(), "$ ".into()),
        ],
        user: me.into(),
        workdir: "/tmp".into(),
    }
}

fn request(sock: &Path, req: &AgentRequest) -> UnixStream {
    let mut s = UnixStream::connect(sock).unwrap();
    write_json(&mut s, FrameKind::Request, req).unwrap();
    s
}

fn attach(sock: &Path, name: &str, create: bool, size: TtySize) -> (UnixStream, SessionInfo) {
    let req = AttachRequest {
        version: 1,
        session: name.into(),
        size: Some(size),
        create: create.then(spec),
    };
    let mut s = request(sock, &AgentRequest::Attach(req));
    let f = proto::read_frame(&mut s).unwrap().unwrap();
    assert_eq!(
        f.kind,
        FrameKind::Reply,
        "{}",
        String::from_utf8_lossy(&f.payload)
    );
    (s, proto::decode(&f.payload, "info").unwrap())
}

/// Read output until it contains `want` (or fail after a while).
fn read_until(s: &mut UnixStream, want: &str) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut seen = String::new();
    while !seen.contains(want) {
        let f = proto::read_frame(s)
            .unwrap_or_else(|e| panic!("waiting for {want:?}, saw {seen:?}: {e}"))
            .unwrap();
        match f.kind {
            FrameKind::Stdout => seen.push_str(&String::from_utf8_lossy(&f.payload)),
            FrameKind::Exit => panic!("session ended while waiting for {want:?}; saw {seen:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

/// Read to the end of the connection: the output and the exit code, if one came.
fn drain(s: &mut UnixStream) -> (String, Option<i32>) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (mut out, mut code) = (String::new(), None);
    while let Ok(Some(f)) = proto::read_frame(s) {
        match f.kind {
            FrameKind::Stdout => out.push_str(&String::from_utf8_lossy(&f.payload)),
            FrameKind::Exit => {
                code = Some(
                    proto::decode::<islo_agent::ExitStatus>(&f.payload, "exit")
                        .unwrap()
                        .code,
                )
            }
            _ => {}
        }
    }
    (out, code)
}

fn type_line(s: &mut UnixStream, line: &str) {
    proto::write_frame(s, FrameKind::Stdin, format!("{line}\n").as_bytes()).unwrap();
}

fn list(sock: &Path) -> Vec<SessionInfo> {
    let mut s = request(sock, &AgentRequest::ListSessions { version: 1 });
    proto::decode(&proto::read_frame(&mut s).unwrap().unwrap().payload, "list").unwrap()
}

#[test]
fn sessions_outlive_clients_replay_and_share() {
    let a = agent();
    let size = TtySize {
        rows: 30,
        cols: 100,
    };
    let (mut c1, info) = attach(&a.sock, "main", true, size);
    assert!(info.created && info.status == "connected");
    type_line(&mut c1, "echo marker-$((40+2))");
    read_until(&mut c1, "marker-42");
    type_line(&mut c1, "stty size");
    read_until(&mut c1, "30 100");
    drop(c1); // detach
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(list(&a.sock)[0].status, "disconnected");

    // Re-attach: the screen so far is replayed, the shell is the same one.
    let (mut c2, info) = attach(
        &a.sock,
        "main",
        true,
        TtySize {
            rows: 40,
            cols: 120,
        },
    );
    assert!(!info.created);
    read_until(&mut c2, "marker-42");
    type_line(&mut c2, "stty size");
    read_until(&mut c2, "40 120");

    // A second client sees the same output; input from either reaches the shell.
    let (mut c3, _) = attach(
        &a.sock,
        "main",
        false,
        TtySize {
            rows: 40,
            cols: 120,
        },
    );
    read_until(&mut c3, "marker-42");
    type_line(&mut c3, "echo from-$((1+2))-three");
    read_until(&mut c2, "from-3-three");
    read_until(&mut c3, "from-3-three");
    assert_eq!(list(&a.sock)[0].clients, 2);

    // Ctrl-C interrupts the foreground job, not the shell.
    type_line(&mut c2, "sleep 100");
    std::thread::sleep(Duration::from_millis(200));
    proto::write_frame(&mut c2, FrameKind::Stdin, b"\x03").unwrap();
    type_line(&mut c2, "echo after-$((6*7))");
    read_until(&mut c2, "after-42");

    // `exit` ends the session for everyone; it is then listed as dead and recreated on use.
    type_line(&mut c2, "exit 3");
    assert_eq!(drain(&mut c3).1, Some(3));
    assert_eq!(list(&a.sock)[0].status, "dead");
    let (_c4, info) = attach(&a.sock, "main", true, size);
    assert!(info.created, "a dead session is recreated");
}

#[test]
fn missing_sessions_and_kill() {
    let a = agent();
    let req = AttachRequest {
        version: 1,
        session: "nope".into(),
        size: None,
        create: None,
    };
    let mut s = request(&a.sock, &AgentRequest::Attach(req));
    let f = proto::read_frame(&mut s).unwrap().unwrap();
    assert_eq!(f.kind, FrameKind::Error);
    assert_eq!(
        proto::AgentError::decode(&f.payload).kind,
        proto::ErrorKind::NotFound
    );
    let (_c, _) = attach(&a.sock, "doomed", true, TtySize { rows: 24, cols: 80 });
    let mut k = request(
        &a.sock,
        &AgentRequest::KillSession {
            version: 1,
            session: "doomed".into(),
        },
    );
    assert_eq!(
        proto::read_frame(&mut k).unwrap().unwrap().kind,
        FrameKind::Reply
    );
    assert!(list(&a.sock).is_empty());
    let mut k = request(
        &a.sock,
        &AgentRequest::KillSession {
            version: 1,
            session: "doomed".into(),
        },
    );
    let f = proto::read_frame(&mut k).unwrap().unwrap();
    assert_eq!(f.kind, FrameKind::Error);
    assert_eq!(
        proto::AgentError::decode(&f.payload).kind,
        proto::ErrorKind::NotFound
    );
}

#[test]
fn tty_exec_is_a_terminal_and_dies_with_its_connection() {
    let a = agent();
    let mut e = spec();
    e.argv = vec![
        "/bin/sh".into(),
        "-c".into(),
        "tty >/dev/null && echo is-a-tty; stty size; exit 5".into(),
    ];
    let req = ExecRequest {
        version: 1,
        argv: e.argv,
        env: e.env,
        user: e.user,
        workdir: e.workdir,
        tty: Some(TtySize { rows: 12, cols: 34 }),
    };
    let mut s = request(&a.sock, &AgentRequest::Exec(req.clone()));
    let (out, code) = drain(&mut s);
    assert!(out.contains("is-a-tty") && out.contains("12 34"), "{out:?}");
    assert_eq!(code, Some(5));

    // Closing the connection kills a tty exec.
    let marker = format!("islo-tty-test-{}", std::process::id());
    let req = ExecRequest {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("sleep 100; : {marker}"),
        ],
        ..req
    };
    let s = request(&a.sock, &AgentRequest::Exec(req));
    std::thread::sleep(Duration::from_millis(300));
    let running = |m: &str| {
        std::process::Command::new("pgrep")
            .args(["-f", m])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(running(&marker), "the tty exec did not start");
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(&marker) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!running(&marker), "the tty exec outlived its connection");
}

#[test]
fn a_dead_session_attached_without_a_command_replays_its_end() {
    let a = agent();
    let size = TtySize { rows: 24, cols: 80 };
    let (mut c, _) = attach(&a.sock, "job", true, size);
    type_line(&mut c, "echo last-words-$((6*7)); exit 5");
    assert_eq!(drain(&mut c).1, Some(5));
    assert_eq!(list(&a.sock)[0].status, "dead");

    // Without `create`: the scrollback, then the exit, and the session stays dead.
    let (mut r, info) = attach(&a.sock, "job", false, size);
    assert!(!info.created && info.status == "dead", "{info:?}");
    assert!(info.replay_bytes > 0);
    let (out, code) = drain(&mut r);
    assert!(out.contains("last-words-42"), "{out:?}");
    assert_eq!(out.len() as u64, info.replay_bytes);
    assert_eq!(code, Some(5));
    assert_eq!(list(&a.sock)[0].status, "dead");
}
