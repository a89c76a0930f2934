//! Secrets (`/secrets`, an islo extension; the hosted product keeps them in environments and
//! integrations).
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
