//! Coding agents islo starts in sandboxes (`GET /agents`, an islo extension). A profile is
//! data: how to find the agent in an image, install it, run it interactively or on a task,
//! the env it needs, and the provider key the gateway injects for it (and toward which hosts).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::AuthStrategy;

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Shell test (`sh -c`) that succeeds when the agent is installed.
    pub detect: String,
    /// Shell script (`sh -c`, as root, through the gateway) that installs it.
    pub install: String,
    /// argv of its interactive UI.
    pub interactive: Vec<String>,
    /// argv of a one-shot task; an element `{task}` is replaced by the prompt.
    pub task: Vec<String>,
    /// Env the agent runs with (the provider key's placeholder comes from the secret).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The secret the gateway injects for it (`anthropic`, `openai`, `cursor`, …).
    pub provider_key: String,
    /// The local env var whose value islo offers to store as that secret.
    #[serde(default)]
    pub local_env: Option<String>,
    /// Hosts the secret is injected toward, when islo stores it.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// How it is injected there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_strategy: Option<AuthStrategy>,
}

/// `GET /agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentProfilesResponse {
    pub agents: Vec<AgentProfile>,
}
