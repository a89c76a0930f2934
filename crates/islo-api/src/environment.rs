//! Environments (`/environments`): named sets of variables and secrets a sandbox is created
//! with (`environment` on create, or the tenant's default). Variables and `sandbox_env`
//! secrets land in the sandbox's env; `gateway_injected` secrets never enter the sandbox (a
//! placeholder does) and the gateway adds them toward their rule's host. Secret values go in
//! and never come out (`has_value`).

use serde::{Deserialize, Serialize};

crate::closed::closed_set! {
    /// Where an entry's value goes.
    EntryPlacement {
        /// In every command's environment.
        SandboxEnv = "sandbox_env",
        /// Only the gateway holds it; the sandbox sees a placeholder.
        GatewayInjected = "gateway_injected",
    }
}

crate::closed::closed_set! {
    /// A plain variable or a secret (whose value is never answered).
    EntryKind {
        Variable = "variable",
        Secret = "secret",
    }
}

/// Which requests a `gateway_injected` secret is added to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentGatewayRule {
    /// Host glob (`api.example.com`, `*.example.com`).
    pub host_pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Not supported on an environment's rule (put it on a gateway profile's rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_rpm: Option<i64>,
    /// How the secret is sent (default: `Authorization: Bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_strategy: Option<crate::AuthStrategy>,
    /// Not supported here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_filter: Option<serde_json::Value>,
}

/// One entry of a create or update.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentEntryInput {
    pub kind: EntryKind,
    /// The env var name.
    pub key: String,
    /// Required for a new secret; on an update, omitted keeps the stored value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Default `sandbox_env`; variables can only be `sandbox_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<EntryPlacement>,
    /// Required for `gateway_injected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<EnvironmentGatewayRule>,
}

impl std::fmt::Debug for EnvironmentEntryInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = match (self.kind, &self.value) {
            (_, None) => None,
            (EntryKind::Secret, Some(_)) => Some("<redacted>"),
            (EntryKind::Variable, Some(v)) => Some(v.as_str()),
        };
        f.debug_struct("EnvironmentEntryInput")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("value", &value)
            .field("placement", &self.placement)
            .field("rule", &self.rule)
            .finish()
    }
}

/// `POST /environments`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateEnvironmentRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<EnvironmentEntryInput>>,
}

/// `PATCH /environments/{environment_ref}`: what is given replaces; `entries` replaces the
/// whole set (a secret given without a value keeps the stored one).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateEnvironmentRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<EnvironmentEntryInput>>,
}

/// A stored entry's rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentRuleResponse {
    pub id: String,
    pub host_pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_strategy: Option<crate::AuthStrategy>,
}

/// A stored entry: a variable with its value, a secret with `has_value` only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentEntryResponse {
    pub id: String,
    pub key: String,
    pub kind: EntryKind,
    pub placement: EntryPlacement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_value: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<EnvironmentRuleResponse>,
    pub created_at: String,
    pub updated_at: String,
}

/// One environment, whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentResponse {
    pub id: String,
    pub name: String,
    pub is_default: bool,
    pub entries: Vec<EnvironmentEntryResponse>,
    pub created_at: String,
    pub updated_at: String,
}

/// One environment in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentListItem {
    pub id: String,
    pub name: String,
    pub is_default: bool,
    pub variable_count: u32,
    pub secret_count: u32,
    pub created_at: String,
    pub updated_at: String,
}
