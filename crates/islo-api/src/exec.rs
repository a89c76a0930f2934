//! Exec: run a command in a sandbox, asynchronously or as a stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Each of stdout and stderr of an async exec keeps at most this many bytes (the tail).
pub const STREAM_CAP_BYTES: usize = 1 << 20;

/// `POST /sandboxes/{name}/exec` and `/exec/stream`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecRequest {
    /// argv; no shell is involved.
    pub command: Vec<String>,
    #[serde(
        default,
        deserialize_with = "crate::env_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub env: Option<BTreeMap<String, String>>,
    /// Seconds after which the command is killed and the exec ends as `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Extension for `/exec/stream`: `base64` makes `stdout`/`stderr` event data the base64 of
    /// the raw bytes (byte-exact, CR-safe) instead of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_encoding: Option<String>,
}

/// Exec states; `completed`, `failed` and `timeout` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    Running,
    Completed,
    Failed,
    Timeout,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "timeout" => Self::Timeout,
            _ => return None,
        })
    }
}

/// `POST /sandboxes/{name}/exec` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecResponse {
    pub exec_id: String,
    pub sandbox_id: String,
    pub status: ExecStatus,
}

/// `GET /sandboxes/{name}/exec/{exec_id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecResultResponse {
    pub exec_id: String,
    pub status: ExecStatus,
    pub stdout: String,
    pub stderr: String,
    /// Either stream lost its head to the cap.
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}
