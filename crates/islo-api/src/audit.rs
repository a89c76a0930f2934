//! The audit log of exec and terminal sessions (`/sandboxes/{sandbox}/exec-sessions`).

use serde::{Deserialize, Serialize};

/// A recorded session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecSessionResponse {
    pub exec_id: String,
    /// A terminal (PTY) session rather than a run-command exec.
    pub is_interactive: bool,
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub log_count: u64,
    /// The command line of an exec; the first line typed into an interactive session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_stdin_line: Option<String>,
    /// Extension: who ran it.
    pub user: String,
    /// Extension: what ran (argv as a shell shows it).
    pub command: String,
    /// Extension: how it ended (absent while running, or when it was cut off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Extension: when it ended (absent while running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Extension: the recording hit its size cap.
    pub truncated: bool,
}

/// One recorded chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecLogLineResponse {
    pub timestamp: String,
    pub seq: i64,
    /// `stdout`, `stderr`, `stdin`, `resize` (a terminal size, `COLSxROWS`), or `islo` (the
    /// recorder's own notes).
    pub stream: String,
    pub data: String,
}

/// `GET …/exec-sessions/{exec_id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecLogsResponse {
    pub exec_id: String,
    pub logs: Vec<ExecLogLineResponse>,
}

/// Query of the logs endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ExecLogsQuery {
    /// At most this many entries, from the start.
    pub limit: Option<u32>,
    /// Extension: at most this many entries, from the end.
    pub tail: Option<u32>,
    /// Entries at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Extension: entries after this sequence number (for following).
    pub after_seq: Option<i64>,
}

/// Query of the sessions list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ExecSessionsQuery {
    /// Sessions with activity at or after this time (RFC 3339).
    pub since: Option<String>,
}
