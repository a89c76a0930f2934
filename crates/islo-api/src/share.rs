//! Shares: a sandbox's port reachable by anyone holding an unguessable URL, until it expires
//! or is revoked (`/sandboxes/{sandbox_name}/shares`).

use serde::{Deserialize, Serialize};

/// Shortest and longest share lifetime, in seconds (60 s … 7 days).
pub const SHARE_TTL_MIN: u64 = 60;
pub const SHARE_TTL_MAX: u64 = 7 * 24 * 3600;
/// Lifetime when the request names none (24 h, the CLI's default too).
pub const SHARE_TTL_DEFAULT: u64 = 24 * 3600;

/// `POST /sandboxes/{sandbox_name}/shares`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateShareRequest {
    /// TCP port inside the sandbox (1–65535).
    pub port: i64,
    /// Lifetime in seconds, 60 … 604800 (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}

/// One share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareResponse {
    /// `sh_…`.
    pub share_id: String,
    /// The public URL (no islo credentials needed).
    pub url: String,
    pub port: u16,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// One request served through a share (an islo extension:
/// `GET /sandboxes/{sandbox_name}/shares/{share_id}/requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareRequestRecord {
    pub id: i64,
    pub share_id: String,
    /// When the request arrived (RFC 3339).
    pub at: String,
    /// The client's address as islod saw it.
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub method: String,
    /// The path inside the sandbox, without its query.
    pub path: String,
    /// HTTP status answered (101 for a WebSocket).
    pub status: u16,
    /// Bytes from the client, and to it (bodies, or a WebSocket's both ways).
    pub bytes_in: u64,
    pub bytes_out: u64,
}
