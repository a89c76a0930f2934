//! Persistent sessions and the terminal WebSocket protocol.
//!
//! WebSocket endpoints (`GET /sandboxes/{name}/exec` and
//! `GET /sandboxes/{name}/sessions/{session}/attach`) speak protocol version
//! [`PTY_PROTOCOL_VERSION`]: the client's first message is a text message holding a JSON
//! [`PtyOpen`]; after it every message is binary: one type byte ([`PtyFrame`]) then the
//! payload. `data` carries terminal bytes both ways (stdout, in pipe mode); `resize` (client →
//! server) a JSON [`PtySize`]; `exit` (server → client) a JSON [`PtyExit`], the last message;
//! `error` (server → client) a UTF-8 message, followed by the `exit` it stands for (125: the
//! command could not be started; 255: the sandbox went away while it ran) and the close;
//! `info` (server → client, first) a JSON [`SessionInfo`] for session attaches. An exec opened with `tty: false` runs on pipes:
//! its stderr comes as `stderr` frames, and the client ends its input with `eof`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the terminal WebSocket protocol.
pub const PTY_PROTOCOL_VERSION: u32 = 1;

crate::closed::closed_set! {
    /// A session's state: a client is attached, none is, or its process has ended.
    SessionStatus {
        Connected = "connected",
        Disconnected = "disconnected",
        Dead = "dead",
    }
}

/// A session as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub name: String,
    pub status: SessionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_unix_ms: Option<u64>,
    /// Extension: clients attached now.
    #[serde(default)]
    pub clients: u32,
    /// Extension, on an attach only: how many bytes of scrollback are replayed before live
    /// output (or, for a dead session, before its `exit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_bytes: Option<u64>,
}

/// `GET /sandboxes/{name}/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListSessionsResponse {
    pub sessions: Vec<SessionInfo>,
}

/// `POST /sandboxes/{name}/sessions`, and what a session attach creates when needed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSessionRequest {
    pub name: String,
    /// argv; default the user's login shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "crate::env_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub env: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility; sessions live until they end or are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
}

/// `POST /sandboxes/{name}/sessions` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSessionResponse {
    pub name: String,
    pub status: SessionStatus,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PtySize {
    pub rows: u16,
    pub cols: u16,
}

/// First (text) message of a terminal WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PtyOpen {
    pub version: u32,
    pub size: PtySize,
    /// For `/exec`: the command to run (its `command` must not be empty). For an attach: what
    /// to create when the session is missing or dead (`command` empty: the login shell);
    /// absent: attach only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<crate::ExecRequest>,
    /// `/exec` only: `false` runs on pipes instead of a terminal (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
}

/// How a terminal's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyExit {
    pub code: i32,
}

/// One binary message of the terminal protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtyFrame {
    Data(Vec<u8>),
    Resize(PtySize),
    Exit(PtyExit),
    Error(String),
    Info(SessionInfo),
    /// Standard error of a pipe-mode exec.
    Stderr(Vec<u8>),
    /// End of the client's input (pipe mode).
    Eof,
}

impl PtyFrame {
    const DATA: u8 = 0;
    const RESIZE: u8 = 1;
    const EXIT: u8 = 2;
    const ERROR: u8 = 3;
    const INFO: u8 = 4;
    const STDERR: u8 = 5;
    const EOF: u8 = 6;

    pub fn encode(&self) -> Vec<u8> {
        let (t, body) = match self {
            Self::Data(d) => (Self::DATA, d.clone()),
            Self::Resize(s) => (Self::RESIZE, serde_json::to_vec(s).unwrap_or_default()),
            Self::Exit(e) => (Self::EXIT, serde_json::to_vec(e).unwrap_or_default()),
            Self::Error(m) => (Self::ERROR, m.as_bytes().to_vec()),
            Self::Info(i) => (Self::INFO, serde_json::to_vec(i).unwrap_or_default()),
            Self::Stderr(d) => (Self::STDERR, d.clone()),
            Self::Eof => (Self::EOF, Vec::new()),
        };
        let mut v = Vec::with_capacity(body.len() + 1);
        v.push(t);
        v.extend(body);
        v
    }

    pub fn decode(msg: &[u8]) -> Option<Self> {
        let (&t, body) = msg.split_first()?;
        Some(match t {
            Self::DATA => Self::Data(body.to_vec()),
            Self::RESIZE => Self::Resize(serde_json::from_slice(body).ok()?),
            Self::EXIT => Self::Exit(serde_json::from_slice(body).ok()?),
            Self::ERROR => Self::Error(String::from_utf8_lossy(body).into_owned()),
            Self::INFO => Self::Info(serde_json::from_slice(body).ok()?),
            Self::STDERR => Self::Stderr(body.to_vec()),
            Self::EOF => Self::Eof,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_pty_frames() {
        assert_eq!(PtyFrame::Data(b"ls\r".to_vec()).encode(), b"\x00ls\r");
        assert_eq!(
            PtyFrame::Resize(PtySize { rows: 24, cols: 80 }).encode(),
            b"\x01{\"rows\":24,\"cols\":80}"
        );
        assert_eq!(
            PtyFrame::Exit(PtyExit { code: 130 }).encode(),
            b"\x02{\"code\":130}"
        );
        assert_eq!(PtyFrame::Error("gone".into()).encode(), b"\x03gone");
        assert_eq!(PtyFrame::Stderr(b"e".to_vec()).encode(), b"\x05e");
        assert_eq!(PtyFrame::Eof.encode(), b"\x06");
        for f in [
            PtyFrame::Data(vec![0, 255]),
            PtyFrame::Resize(PtySize { rows: 1, cols: 2 }),
            PtyFrame::Exit(PtyExit { code: -1 }),
            PtyFrame::Error("x".into()),
            PtyFrame::Info(SessionInfo {
                name: "main".into(),
                status: SessionStatus::Connected,
                started_at_unix_ms: Some(1),
                clients: 1,
                replay_bytes: Some(3),
            }),
        ] {
            assert_eq!(PtyFrame::decode(&f.encode()), Some(f));
        }
        assert_eq!(PtyFrame::decode(b""), None);
        assert_eq!(PtyFrame::decode(b"\x09"), None);
        let open = PtyOpen {
            version: 1,
            size: PtySize { rows: 24, cols: 80 },
            exec: None,
            tty: None,
        };
        assert_eq!(
            serde_json::to_string(&open).unwrap(),
            r#"{"version":1,"size":{"rows":24,"cols":80}}"#
        );
    }
}
