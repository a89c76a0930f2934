//! Secrets (`/secrets`, an islo extension; the hosted product keeps them in environments and
//! integrations) and the gateway's decision log (`/sandboxes/{sandbox}/gateway-events`).
//!
//! A secret's value goes in and never comes out: responses carry `has_value` only. Sandboxes
//! see placeholders (`islo_p_…`) in the env vars a secret names; the gateway swaps them, or
//! adds the secret itself for rules whose `provider_key` names it.

use serde::{Deserialize, Serialize};

use crate::AuthStrategy;

/// Set a secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretRequest {
    pub value: String,
    /// Env vars that carry the secret's placeholder in sandboxes (default: the provider's
    /// usual ones for `github`, `anthropic`, `openai`, `slack`; none otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_vars: Option<Vec<String>>,
    /// Host globs the gateway injects it for, in any allowed request, besides rules naming it
    /// as `provider_key` (default: the provider's API hosts for `anthropic`, `openai`,
    /// `cursor`, `github`, `slack`; none otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// How it is added toward those hosts (default: the provider's way; none: placeholders
    /// are swapped, nothing is added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_strategy: Option<AuthStrategy>,
}

impl std::fmt::Debug for SecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRequest")
            .field("value", &"<redacted>")
            .field("env_vars", &self.env_vars)
            .field("hosts", &self.hosts)
            .field("auth_strategy", &self.auth_strategy)
            .finish()
    }
}

/// A secret, without its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretResponse {
    pub name: String,
    pub env_vars: Vec<String>,
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_strategy: Option<AuthStrategy>,
    pub has_value: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /secrets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretsResponse {
    pub secrets: Vec<SecretResponse>,
}

/// One decision of the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayEventResponse {
    pub id: i64,
    pub sandbox_id: String,
    pub at: String,
    /// `http`, `https` or `tcp` (a flow that was neither, reset).
    pub scheme: String,
    pub host: String,
    pub method: String,
    /// Without the query.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// `allow`, `deny`, `rate_limited` or `error`.
    pub action: String,
    /// Status returned to the sandbox (0: the flow was reset).
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub latency_ms: f64,
    pub reason: String,
}

/// `GET /sandboxes/{sandbox}/gateway-events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayEventsResponse {
    pub events: Vec<GatewayEventResponse>,
}

/// Query of the decision log: events after `after_id`, or since a time, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct GatewayEventsQuery {
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_id: Option<i64>,
    /// The last N (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}
