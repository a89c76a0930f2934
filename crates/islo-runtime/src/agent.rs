//! Client side of the agent protocol (blocking), shared by every driver.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use islo_agent::proto::{self, AgentRequest, ExecRequest, ExitStatus, FrameKind, ProtoError};

/// One event of a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(ExitStatus),
    /// The agent could not run the command (unknown user, bad workdir, …).
    Error(String),
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
                FrameKind::Error => {
                    ExecEvent::Error(String::from_utf8_lossy(&f.payload).into_owned())
                }
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

/// Write side of an exec: stdin and signals.
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
    pub fn signal(&mut self, sig: u8) -> Result<(), ProtoError> {
        proto::write_frame(&mut self.stream, FrameKind::Signal, &[sig])
    }
}

/// Start `req` on the agent at `socket`.
pub fn exec(socket: &Path, req: ExecRequest) -> Result<ExecConn, ProtoError> {
    let mut stream = UnixStream::connect(socket)?;
    proto::write_json(&mut stream, FrameKind::Request, &AgentRequest::Exec(req))?;
    Ok(ExecConn { stream })
}

/// Ask the agent whether it is alive.
pub fn ping(socket: &Path) -> Result<(), ProtoError> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    proto::write_json(
        &mut stream,
        FrameKind::Request,
        &AgentRequest::Ping {
            version: proto::PROTOCOL_VERSION,
        },
    )?;
    match proto::read_frame(&mut stream)? {
        Some(f) if f.kind == FrameKind::Pong => Ok(()),
        Some(f) if f.kind == FrameKind::Error => Err(ProtoError::Io(std::io::Error::other(
            String::from_utf8_lossy(&f.payload).into_owned(),
        ))),
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
    conn.control()?.close_stdin()?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(ev) = conn.next_event()? {
        match ev {
            ExecEvent::Stdout(b) => out.extend(b),
            ExecEvent::Stderr(b) => err.extend(b),
            ExecEvent::Exit(st) => return Ok((st, out, err)),
            ExecEvent::Error(m) => return Err(ProtoError::Io(std::io::Error::other(m))),
        }
    }
    Err(ProtoError::Io(std::io::ErrorKind::UnexpectedEof.into()))
}
