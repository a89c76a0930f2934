//! Agent sessions: coding-agent transcripts (Claude Code today) found in a sandbox and
//! aggregated (`/sandboxes/{sandbox}/agent-sessions`).

use serde::{Deserialize, Serialize};

/// Where a session sits in its tree of sub-agents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSessionPlace {
    /// The transcript, relative to the harness's projects directory.
    pub session_path: String,
    /// The session id (`claude --resume NAME`); `agent-ID` for a sub-agent.
    pub session_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_session_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_session_name: Option<String>,
    pub root_session_path: String,
    pub root_session_name: String,
    pub is_subagent: bool,
    /// 0 for a top-level session.
    pub session_depth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// One agent session with its totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSessionResponse {
    #[serde(flatten)]
    pub place: AgentSessionPlace,
    pub child_count: u32,
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub event_count: u64,
    /// The model that answered (the last one, when it changed); empty before any answer.
    pub model: String,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub total_cache_creation_tokens: u64,
    pub total_cache_read_tokens: u64,
    pub cwd: String,
    pub git_branch: String,
    /// `claude-code`.
    pub harness_name: String,
    pub first_user_text: String,
}

/// One transcript entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSessionEventResponse {
    #[serde(flatten)]
    pub place: AgentSessionPlace,
    pub timestamp: String,
    /// `user_message`, `assistant_message`, `thinking`, `tool_use`, `tool_result`, `system`
    /// or `summary`.
    pub event_type: String,
    /// `user`, `assistant`, `tool` or `system`.
    pub actor: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    pub harness_name: String,
    pub cwd: String,
    /// What was said or done, as text (tool calls as `Name {json input}`).
    pub body: String,
}

/// Query of the agent-sessions list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AgentSessionsQuery {
    /// Sessions with activity at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Include sub-agent sessions (default: top-level sessions only).
    pub include_subagents: Option<bool>,
}

/// Query of a session's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AgentEventsQuery {
    /// Picks the session when several share `session_name`.
    pub session_path: Option<String>,
    /// Also the events of its sub-agents, interleaved by time.
    pub include_descendants: Option<bool>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// Events strictly after this time (RFC 3339), applied before `offset`.
    pub since: Option<String>,
}
