//! Client side of the agent protocol (blocking), shared by every driver.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use islo_agent::proto::{
    self, AgentError, AgentRequest, ExecRequest, ExitStatus, FrameKind, ProtoError,
};
use islo_agent::{AttachRequest, SessionInfo};

pub mod stream;

/// One event of a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(ExitStatus),
    /// The agent could not run the command (unknown user, bad workdir, …).
    Error(AgentError),
}

/// A live exec on an agent connection.
pub struct ExecConn {
    stream: UnixStream,
}

impl ExecConn {
    /// Next event; `None` once the agent closed the connection.
    pub fn next_event(&mut self) -> Result<Option<ExecEvent>, ProtoError> {
        loop {
            let Some(f) = proto::read_frame(&mut self.stream)? else {
                return Ok(None);
            };
            return Ok(Some(match f.kind {
                FrameKind::Stdout => ExecEvent::Stdout(f.payload),
                FrameKind::Stderr => ExecEvent::Stderr(f.payload),
                FrameKind::Exit => ExecEvent::Exit(proto::decode(&f.payload, "exit status")?),
                FrameKind::Error => ExecEvent::Error(AgentError::decode(&f.payload)),
                _ => continue,
            }));
        }
    }

    /// A handle for sending input and signals while another thread reads events.
    pub fn control(&self) -> Result<ExecControl, ProtoError> {
        Ok(ExecControl {
            stream: self.stream.try_clone()?,
        })
    }
}

/// Write side of an exec: stdin and its end (async callers use [`stream::InputWriter`]).
pub struct ExecControl {
    stream: UnixStream,
}

impl ExecControl {
    pub fn stdin(&mut self, data: &[u8]) -> Result<(), ProtoError> {
        for chunk in data.chunks(proto::MAX_PAYLOAD) {
            proto::write_frame(&mut self.stream, FrameKind::Stdin, chunk)?;
        }
        Ok(())
    }
    pub fn close_stdin(&mut self) -> Result<(), ProtoError> {
        proto::write_frame(&mut self.stream, FrameKind::StdinEof, b"")
    }
}

/// Connect to the agent socket at `path` without following a symlink there: the directory
/// holding it is writable by root inside the sandbox, which could otherwise point islod at any
/// unix socket of the host. The socket is opened `O_PATH|O_NOFOLLOW`, checked to be a socket,
/// and connected through `/proc/self/fd/N`, so what was checked is what is connected to.
pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    use rustix::fs::{FileType, Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is not a socket (refusing to follow it)", path.display()),
        ));
    }
    use std::os::fd::AsRawFd;
    UnixStream::connect(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// How long the agent has to answer a request that expects an answer. A connection to a
/// stopped (SIGSTOP) or wedged agent still succeeds, the kernel queueing it; only the reply
/// tells that the agent is there.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(10);
/// How long [`ping`] waits.
pub const PING_DEADLINE: Duration = Duration::from_secs(2);

/// Connect for a request whose answer may be long in coming (an exec is silent while its
/// command is): the agent must first answer a [`ping`], so a stopped agent is an error
/// within [`PING_DEADLINE`] instead of a wait without end.
fn connect_live(socket: &Path) -> Result<UnixStream, ProtoError> {
    ping(socket)?;
    Ok(connect(socket)?)
}

/// Start `req` on the agent at `socket`.
pub fn exec(socket: &Path, req: ExecRequest) -> Result<ExecConn, ProtoError> {
    let mut stream = connect_live(socket)?;
    send(&mut stream, &AgentRequest::Exec(req))?;
    Ok(ExecConn { stream })
}

/// Write `req`. An agent that could not serve the connection (no thread for it: the
/// sandbox's process limit) says why in an error frame and hangs up, maybe before the
/// request is written: that reason, not the broken pipe.
fn send(stream: &mut UnixStream, req: &AgentRequest) -> Result<(), ProtoError> {
    match proto::write_json(stream, FrameKind::Request, req) {
        Err(ProtoError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            let _ = stream.set_read_timeout(Some(REPLY_DEADLINE));
            match proto::read_frame(stream) {
                Ok(Some(f)) if f.kind == FrameKind::Error => {
                    Err(ProtoError::Agent(AgentError::decode(&f.payload)))
                }
                _ => Err(ProtoError::Io(e)),
            }
        }
        other => other,
    }
}

/// One request answered by one `Reply` (or `Error`) frame.
fn call<T: for<'de> serde::Deserialize<'de>>(
    socket: &Path,
    req: &AgentRequest,
) -> Result<T, ProtoError> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(REPLY_DEADLINE))?;
    stream.set_write_timeout(Some(REPLY_DEADLINE))?;
    send(&mut stream, req)?;
    reply(&mut stream)
}

fn reply<T: for<'de> serde::Deserialize<'de>>(stream: &mut UnixStream) -> Result<T, ProtoError> {
    match proto::read_frame(stream)? {
        Some(f) if f.kind == FrameKind::Reply => proto::decode(&f.payload, "reply"),
        Some(f) if f.kind == FrameKind::Error => {
            Err(ProtoError::Agent(AgentError::decode(&f.payload)))
        }
        _ => Err(ProtoError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// Make the agent checkpointable: it closes every other connection and listens at the path
/// `inside` of the sandbox instead of on `socket` (see [`AgentRequest::Quiesce`]).
pub fn quiesce(socket: &Path, inside: &str) -> Result<(), ProtoError> {
    let req = AgentRequest::Quiesce {
        version: proto::PROTOCOL_VERSION,
        socket: inside.to_string(),
    };
    call::<serde_json::Value>(socket, &req).map(drop)
}

/// Hand the agent at `socket` a listening socket to serve on from now on (after a restore, or
/// a pause that failed): the other end of [`quiesce`].
pub fn hand_listener(
    socket: &Path,
    listener: &std::os::unix::net::UnixListener,
) -> Result<(), ProtoError> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::os::fd::AsFd;
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(REPLY_DEADLINE))?;
    stream.set_write_timeout(Some(REPLY_DEADLINE))?;
    let req = AgentRequest::Listen {
        version: proto::PROTOCOL_VERSION,
    };
    proto::write_json(&mut stream, FrameKind::Request, &req)?;
    reply::<serde_json::Value>(&mut stream)?;
    let fds = [listener.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &stream,
        &[std::io::IoSlice::new(b"L")],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(std::io::Error::from)?;
    reply::<serde_json::Value>(&mut stream).map(drop)
}

/// The agent's sessions.
pub fn list_sessions(socket: &Path) -> Result<Vec<SessionInfo>, ProtoError> {
    call(
        socket,
        &AgentRequest::ListSessions {
            version: proto::PROTOCOL_VERSION,
        },
    )
}

/// End a session (an agent error of kind `NotFound` when there is none).
pub fn kill_session(socket: &Path, session: &str) -> Result<(), ProtoError> {
    let req = AgentRequest::KillSession {
        version: proto::PROTOCOL_VERSION,
        session: session.to_string(),
    };
    call::<serde_json::Value>(socket, &req).map(drop)
}

/// Attach to a session; returns the connection (terminal output follows) and its state.
/// Errors the agent reports (no such session, cannot start) are [`ProtoError::Agent`].
pub fn attach(socket: &Path, req: AttachRequest) -> Result<(UnixStream, SessionInfo), ProtoError> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(REPLY_DEADLINE))?;
    proto::write_json(&mut stream, FrameKind::Request, &AgentRequest::Attach(req))?;
    let info = reply(&mut stream)?;
    stream.set_read_timeout(None)?;
    Ok((stream, info))
}

/// Start an exec (on a terminal when `req.tty` is set) and split its connection for async
/// use: events out, input in.
pub async fn exec_async(
    socket: &Path,
    req: ExecRequest,
) -> Result<(stream::EventReader, stream::InputWriter), ProtoError> {
    let socket = socket.to_path_buf();
    let conn = tokio::task::spawn_blocking(move || exec(&socket, req).map(|c| c.stream))
        .await
        .map_err(|e| ProtoError::Io(std::io::Error::other(e)))??;
    Ok(stream::split(conn)?)
}

/// Regular files the agent finds (see [`islo_agent::ScanRequest`]).
pub fn scan_files(
    socket: &Path,
    req: islo_agent::ScanRequest,
) -> Result<islo_agent::ScanReply, ProtoError> {
    call(socket, &AgentRequest::ScanFiles(req))
}

/// Up to `len` bytes of the file at `path` in the sandbox, from `offset`.
pub fn read_file(socket: &Path, path: &str, offset: u64, len: u32) -> Result<Vec<u8>, ProtoError> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(REPLY_DEADLINE))?;
    let req = islo_agent::ReadRequest {
        version: proto::PROTOCOL_VERSION,
        path: path.to_string(),
        offset,
        len,
    };
    proto::write_json(
        &mut stream,
        FrameKind::Request,
        &AgentRequest::ReadFile(req),
    )?;
    match proto::read_frame(&mut stream)? {
        Some(f) if f.kind == FrameKind::Stdout => Ok(f.payload),
        Some(f) if f.kind == FrameKind::Error => {
            Err(ProtoError::Agent(AgentError::decode(&f.payload)))
        }
        _ => Err(ProtoError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// A TCP connection to `port` on the sandbox's loopback: after this returns, the stream
/// carries the connection's bytes raw. Nothing listening is an agent error of kind `Refused`
/// with the agent's explanation.
pub fn connect_port(socket: &Path, port: u16) -> Result<UnixStream, ProtoError> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(REPLY_DEADLINE))?;
    let req = AgentRequest::Connect {
        version: proto::PROTOCOL_VERSION,
        port,
    };
    proto::write_json(&mut stream, FrameKind::Request, &req)?;
    match proto::read_frame(&mut stream)? {
        Some(f) if f.kind == FrameKind::Reply => {
            stream.set_read_timeout(None)?;
            Ok(stream)
        }
        Some(f) if f.kind == FrameKind::Error => {
            Err(ProtoError::Agent(AgentError::decode(&f.payload)))
        }
        _ => Err(ProtoError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// Ask the agent whether it is alive.
pub fn ping(socket: &Path) -> Result<(), ProtoError> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(PING_DEADLINE))?;
    proto::write_json(
        &mut stream,
        FrameKind::Request,
        &AgentRequest::Ping {
            version: proto::PROTOCOL_VERSION,
        },
    )?;
    match proto::read_frame(&mut stream)? {
        Some(f) if f.kind == FrameKind::Pong => Ok(()),
        Some(f) if f.kind == FrameKind::Error => {
            Err(ProtoError::Agent(AgentError::decode(&f.payload)))
        }
        _ => Err(ProtoError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    }
}

/// Poll [`ping`] until it answers or `timeout` passes.
pub fn wait_ready(socket: &Path, timeout: Duration) -> Result<(), ProtoError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        match ping(socket) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

/// Run `req` to completion and collect its output (tests and small internal jobs).
pub fn run_collect(
    socket: &Path,
    req: ExecRequest,
) -> Result<(ExitStatus, Vec<u8>, Vec<u8>), ProtoError> {
    let mut conn = exec(socket, req)?;
    // A quick command may be done and gone before this arrives; that is fine.
    let _ = conn.control()?.close_stdin();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(ev) = conn.next_event()? {
        match ev {
            ExecEvent::Stdout(b) => out.extend(b),
            ExecEvent::Stderr(b) => err.extend(b),
            ExecEvent::Exit(st) => return Ok((st, out, err)),
            ExecEvent::Error(e) => return Err(ProtoError::Agent(e)),
        }
    }
    Err(ProtoError::Io(std::io::ErrorKind::UnexpectedEof.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_refuses_symlinks_and_non_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.sock");
        let _l = std::os::unix::net::UnixListener::bind(&real).unwrap();
        connect(&real).unwrap();
        let link = dir.path().join("agent.sock");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(connect(&link).is_err(), "a symlink must not be followed");
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(connect(&file).is_err());
    }
}
