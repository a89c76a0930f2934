//! Versioned frame protocol spoken over the agent socket.
//!
//! A frame is `len: u32 big-endian` (payload length), `kind: u8`, then `len` payload bytes.
//! A connection starts with one [`FrameKind::Request`] frame whose payload is a JSON
//! [`AgentRequest`] carrying [`PROTOCOL_VERSION`]. For an exec the agent then sends
//! `Stdout`/`Stderr` frames and ends with one `Exit` (JSON [`ExitStatus`]) or `Error` (JSON
//! [`AgentError`]: a kind and a message) frame; the client may send `Stdin`, `StdinEof` and `Signal` (payload: one byte,
//! the signal number) frames. Payloads are capped at [`MAX_PAYLOAD`].
//!
//! An exec with `tty` runs on a pseudo-terminal: its output arrives as `Stdout` frames and the
//! client may send `Resize` (JSON [`TtySize`]). An `Attach` joins (or creates) a persistent
//! named session: the agent answers one `Reply` (JSON [`SessionInfo`]), replays the session's
//! recent screen as `Stdout`, then streams it live; `Exit` comes when the session's process
//! ends. Closing the connection detaches; the session lives on in the agent. `ListSessions`
//! and `KillSession` answer one `Reply`.
//!
//! `ScanFiles` answers one `Reply` (JSON [`ScanReply`]): the regular files under a directory
//! whose names end in a suffix, found without following symlinks. `ReadFile` answers one
//! `Stdout` frame holding up to `len` bytes of a regular file from `offset` (empty at its
//! end); the file is opened without following a final symlink and must be a regular file.
//! Both run inside the sandbox, so every path resolves in the sandbox's own mount namespace.
//!
//! `Connect` opens a TCP connection to a port on the sandbox's own loopback (the agent lives
//! in the sandbox's network namespace): the agent answers one `Reply` (`{}`) and from then on
//! the socket carries the connection's bytes raw, both ways, each side shutting down its
//! write half at end of stream; or one `Error` when nothing accepts the connection.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Version carried by every request; the agent refuses versions it does not know.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest payload either side accepts in one frame.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Request = 1,
    Stdin = 2,
    StdinEof = 3,
    Stdout = 4,
    Stderr = 5,
    Exit = 6,
    Error = 7,
    Signal = 8,
    Pong = 9,
    Resize = 10,
    Reply = 11,
}

impl FrameKind {
    /// The kind of a frame's type byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Request,
            2 => Self::Stdin,
            3 => Self::StdinEof,
            4 => Self::Stdout,
            5 => Self::Stderr,
            6 => Self::Exit,
            7 => Self::Error,
            8 => Self::Signal,
            9 => Self::Pong,
            10 => Self::Resize,
            11 => Self::Reply,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub payload: Vec<u8>,
}

/// Errors of the frame codec.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("agent connection: {0}")]
    Io(#[from] io::Error),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("malformed {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("protocol version {0} is not supported (agent speaks {PROTOCOL_VERSION})")]
    Version(u32),
    /// The agent answered with an `Error` frame.
    #[error("{0}")]
    Agent(AgentError),
}

/// What kind of failure an `Error` frame reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// What the request names is not there (a session).
    NotFound,
    /// The command or session could not be started (unknown user, bad workdir, no terminal).
    CannotStart,
    /// Nothing accepted a connection to the port.
    Refused,
    /// The request itself was malformed or of an unknown version.
    BadRequest,
    /// Anything else (and every message of an agent older than kinds).
    Failed,
}

/// The payload of an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    pub kind: ErrorKind,
    pub message: String,
}

impl AgentError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| self.message.clone().into_bytes())
    }

    /// Decode a payload; a plain UTF-8 message (an agent that predates kinds) is `Failed`.
    pub fn decode(payload: &[u8]) -> Self {
        serde_json::from_slice(payload).unwrap_or_else(|_| {
            Self::new(
                ErrorKind::Failed,
                String::from_utf8_lossy(payload).into_owned(),
            )
        })
    }
}

/// Write an `Error` frame.
pub fn write_error(w: &mut impl Write, kind: ErrorKind, message: &str) -> Result<(), ProtoError> {
    write_frame(
        w,
        FrameKind::Error,
        &AgentError::new(kind, message).encode(),
    )
}

/// First frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AgentRequest {
    /// Liveness probe: the agent answers with one `Pong` frame (JSON `{"version":N}`).
    Ping { version: u32 },
    /// Run a command.
    Exec(ExecRequest),
    /// Attach to a named session, creating it from `create` when it is missing or dead.
    Attach(AttachRequest),
    /// List the sessions.
    ListSessions { version: u32 },
    /// End a session (its process group is killed).
    KillSession { version: u32, session: String },
    /// Find files (see [`ScanRequest`]).
    ScanFiles(ScanRequest),
    /// Read part of a file (see [`ReadRequest`]).
    ReadFile(ReadRequest),
    /// Relay a TCP connection to `port` on the sandbox's loopback.
    Connect { version: u32, port: u16 },
    /// Make the agent checkpointable before its sandbox is paused: every other connection is
    /// closed (commands and sessions go on), and the agent listens on a socket it binds at
    /// `socket` (a path inside the sandbox) instead of the one the runtime handed it, which
    /// lives in the host's network namespace and cannot be checkpointed. One `Reply` (`{}`).
    Quiesce { version: u32, socket: String },
    /// After a restore: take a listening socket bound on the host again. The agent answers one
    /// `Reply` (`{}`); the client then sends one byte carrying the socket (`SCM_RIGHTS`), and
    /// the agent answers a second `Reply` once it listens there (and no longer at the path a
    /// quiesce bound, which it removes).
    Listen { version: u32 },
}

impl AgentRequest {
    pub fn version(&self) -> u32 {
        match self {
            Self::Ping { version }
            | Self::ListSessions { version }
            | Self::KillSession { version, .. }
            | Self::Connect { version, .. }
            | Self::Quiesce { version, .. }
            | Self::Listen { version } => *version,
            Self::Exec(e) => e.version,
            Self::Attach(a) => a.version,
            Self::ScanFiles(r) => r.version,
            Self::ReadFile(r) => r.version,
        }
    }
}

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

/// What a session runs when it has to be created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// Empty: the user's login shell (`bash` if present, else `sh`).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: String,
    pub workdir: String,
}

/// Join a named session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    pub version: u32,
    pub session: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TtySize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<SessionSpec>,
}

/// A session as the agent reports it (`status`: `connected`, `disconnected` or `dead`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub name: String,
    pub status: String,
    pub started_at_unix_ms: u64,
    pub clients: u32,
    /// Whether this attach created it.
    #[serde(default)]
    pub created: bool,
    /// Attach only: bytes of recent screen replayed as `Stdout` right after this reply
    /// (already seen by earlier clients, so recorders can skip them).
    #[serde(default)]
    pub replay_bytes: u64,
}

/// A command to run inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub version: u32,
    /// argv; `argv[0]` is looked up in `PATH` from `env`.
    pub argv: Vec<String>,
    /// The complete environment of the process, in order.
    pub env: Vec<(String, String)>,
    /// User name or numeric uid.
    pub user: String,
    /// Absolute working directory.
    pub workdir: String,
    /// Run on a pseudo-terminal of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TtySize>,
}

/// Find the regular files under `dir` whose names end in `suffix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRequest {
    pub version: u32,
    /// Absolute, or relative to the home directory of `user`.
    pub dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub suffix: String,
    /// Directory levels below `dir` to descend (0: `dir` itself only).
    pub max_depth: u32,
    /// Stop after this many files.
    pub max_files: u32,
}

/// What a scan found: `root` is `dir` made absolute; paths are relative to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReply {
    pub root: String,
    pub files: Vec<FileEntry>,
}

/// A file a scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
}

/// Read up to `len` bytes (at most [`MAX_PAYLOAD`]) of the file at absolute `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub version: u32,
    pub path: String,
    pub offset: u64,
    pub len: u32,
}

/// How a command ended. `code` follows the shell convention: 128+N for signal N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// Length of a frame's head (payload length, kind).
pub const HEAD_LEN: usize = 5;

/// One frame as bytes: the codec's only encoder (blocking and async writers both send this).
pub fn encode_frame(kind: FrameKind, payload: &[u8]) -> Result<Vec<u8>, ProtoError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(ProtoError::TooLarge(payload.len()));
    }
    let mut buf = Vec::with_capacity(HEAD_LEN + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
    Ok(buf)
}

/// A frame's kind and payload length from its head: the codec's only decoder.
pub fn parse_head(head: &[u8; HEAD_LEN]) -> Result<(FrameKind, usize), ProtoError> {
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(ProtoError::TooLarge(len));
    }
    let kind = FrameKind::from_u8(head[4]).ok_or(ProtoError::UnknownKind(head[4]))?;
    Ok((kind, len))
}

/// Write one frame.
pub fn write_frame(w: &mut impl Write, kind: FrameKind, payload: &[u8]) -> Result<(), ProtoError> {
    w.write_all(&encode_frame(kind, payload)?)?;
    Ok(())
}

/// Write a frame whose payload is `value` as JSON.
pub fn write_json<T: Serialize>(
    w: &mut impl Write,
    kind: FrameKind,
    value: &T,
) -> Result<(), ProtoError> {
    let bytes = serde_json::to_vec(value).map_err(|source| ProtoError::Json {
        what: "frame",
        source,
    })?;
    write_frame(w, kind, &bytes)
}

/// Read one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, ProtoError> {
    let mut head = [0u8; HEAD_LEN];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ProtoError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (kind, len) = parse_head(&head)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some(Frame { kind, payload }))
}

/// Decode a JSON payload.
pub fn decode<T: for<'de> Deserialize<'de>>(
    payload: &[u8],
    what: &'static str,
) -> Result<T, ProtoError> {
    serde_json::from_slice(payload).map_err(|source| ProtoError::Json { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bytes: changing the wire format must be deliberate (bump PROTOCOL_VERSION).
    #[test]
    fn golden_frames() {
        let mut out = Vec::new();
        write_frame(&mut out, FrameKind::Stdout, b"hi\n").unwrap();
        assert_eq!(out, [0, 0, 0, 3, 4, b'h', b'i', b'\n']);

        let req = AgentRequest::Exec(ExecRequest {
            version: PROTOCOL_VERSION,
            argv: vec!["echo".into(), "x".into()],
            env: vec![("PATH".into(), "/bin".into())],
            user: "islo".into(),
            workdir: "/workspace".into(),
            tty: None,
        });
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            json,
            r#"{"op":"exec","version":1,"argv":["echo","x"],"env":[["PATH","/bin"]],"user":"islo","workdir":"/workspace"}"#
        );
        let exit = serde_json::to_string(&ExitStatus {
            code: 137,
            signal: Some(9),
        })
        .unwrap();
        assert_eq!(exit, r#"{"code":137,"signal":9}"#);
        assert_eq!(
            serde_json::to_string(&AgentRequest::Ping { version: 1 }).unwrap(),
            r#"{"op":"ping","version":1}"#
        );
        let attach = AgentRequest::Attach(AttachRequest {
            version: 1,
            session: "main".into(),
            size: Some(TtySize { rows: 24, cols: 80 }),
            create: None,
        });
        assert_eq!(
            serde_json::to_string(&attach).unwrap(),
            r#"{"op":"attach","version":1,"session":"main","size":{"rows":24,"cols":80}}"#
        );
        let scan = AgentRequest::ScanFiles(ScanRequest {
            version: 1,
            dir: ".claude/projects".into(),
            user: Some("islo".into()),
            suffix: ".jsonl".into(),
            max_depth: 3,
            max_files: 10,
        });
        assert_eq!(
            serde_json::to_string(&scan).unwrap(),
            r#"{"op":"scan_files","version":1,"dir":".claude/projects","user":"islo","suffix":".jsonl","max_depth":3,"max_files":10}"#
        );
        let read = AgentRequest::ReadFile(ReadRequest {
            version: 1,
            path: "/a".into(),
            offset: 5,
            len: 9,
        });
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"op":"read_file","version":1,"path":"/a","offset":5,"len":9}"#
        );
        assert_eq!(
            serde_json::to_string(&AgentRequest::Connect {
                version: 1,
                port: 8080
            })
            .unwrap(),
            r#"{"op":"connect","version":1,"port":8080}"#
        );
        let mut out = Vec::new();
        write_json(&mut out, FrameKind::Resize, &TtySize { rows: 1, cols: 2 }).unwrap();
        assert_eq!(out[..5], [0, 0, 0, 19, 10]);
        let mut out = Vec::new();
        write_error(&mut out, ErrorKind::CannotStart, "unknown user \"x\"").unwrap();
        assert_eq!(
            &out[5..],
            br#"{"kind":"cannot_start","message":"unknown user \"x\""}"#
        );
    }

    #[test]
    fn error_frames_of_older_agents_are_plain_text() {
        let e = AgentError::decode(b"session \"a\" does not exist");
        assert_eq!(e.kind, ErrorKind::Failed);
        assert_eq!(e.message, "session \"a\" does not exist");
        let e = AgentError::decode(&AgentError::new(ErrorKind::NotFound, "gone").encode());
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::NotFound, "gone"));
    }

    #[test]
    fn round_trip_and_limits() {
        let mut out = Vec::new();
        write_frame(&mut out, FrameKind::Stdin, b"abc").unwrap();
        write_frame(&mut out, FrameKind::StdinEof, b"").unwrap();
        let mut r = &out[..];
        assert_eq!(read_frame(&mut r).unwrap().unwrap().payload, b"abc");
        assert_eq!(
            read_frame(&mut r).unwrap().unwrap().kind,
            FrameKind::StdinEof
        );
        assert!(read_frame(&mut r).unwrap().is_none());

        let big = [0xff, 0xff, 0xff, 0xff, 4];
        assert!(matches!(
            read_frame(&mut &big[..]),
            Err(ProtoError::TooLarge(_))
        ));
        let bad = [0, 0, 0, 0, 77];
        assert!(matches!(
            read_frame(&mut &bad[..]),
            Err(ProtoError::UnknownKind(77))
        ));
        let cut = [0, 0, 0, 9, 4, 1];
        assert!(read_frame(&mut &cut[..]).is_err());
    }
}
