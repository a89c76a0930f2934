//! Gateway profiles and their rules (`/gateway/profiles`): what a sandbox bound to a profile
//! may reach, and which credentials are added on the way; and the log of the gateway's
//! decisions (`/sandboxes/{sandbox_name}/gateway-events`).

use serde::{Deserialize, Serialize};

crate::closed::closed_set! {
    /// Where a rule's credential goes: `Authorization: Bearer`, `Authorization: Basic` (with
    /// `username`), or a header of its own (`name`, `format`).
    AuthMode {
        Bearer = "bearer",
        Basic = "basic",
        Header = "header",
    }
}

#[allow(clippy::derivable_impls)] // closed_set! writes the derives, the same for every set
impl Default for AuthMode {
    fn default() -> Self {
        Self::Bearer
    }
}

/// How a rule's credential is added to a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthStrategy {
    pub mode: AuthMode,
    /// `basic`: the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `header`: the header's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `header`: the value template, `{token}` standing for the secret (default `{token}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

crate::closed::closed_set! {
    /// What a rule (or a profile's default) does with the traffic it matches.
    RuleAction {
        Allow = "allow",
        Deny = "deny",
    }
}

crate::closed::closed_set! {
    /// When the gateway decrypts a sandbox's TLS. `always`: every flow is terminated with the
    /// installation's CA and decided request by request. `when_needed`: a flow whose host's
    /// decision needs neither its path, its method, a rate limit nor a credential is allowed
    /// or denied on its SNI alone and, if allowed, passed through undecrypted (the sandbox
    /// then checks the upstream's certificate itself).
    TlsInspection {
        Always = "always",
        WhenNeeded = "when_needed",
    }
}

#[allow(clippy::derivable_impls)] // closed_set! writes the derives, the same for every set
impl Default for TlsInspection {
    fn default() -> Self {
        Self::Always
    }
}

crate::closed::closed_set! {
    /// What the gateway did with one request or flow.
    EventAction {
        Allow = "allow",
        Deny = "deny",
        RateLimited = "rate_limited",
        Error = "error",
        /// Stands for decisions that were not logged (a sandbox over the log's rate).
        Dropped = "dropped",
    }
}

/// A profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayProfileResponse {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What happens to traffic no rule matches.
    pub default_action: RuleAction,
    pub internet_enabled: bool,
    pub is_default: bool,
    /// When TLS is decrypted (default `always`).
    #[serde(default)]
    pub tls_inspection: TlsInspection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// A profile with its rules, by priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayProfileDetailResponse {
    #[serde(flatten)]
    pub profile: GatewayProfileResponse,
    #[serde(default)]
    pub rules: Vec<GatewayRuleResponse>,
}

/// `POST /gateway/profiles` (and, every field optional, `PATCH`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayProfileRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<RuleAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_inspection: Option<TlsInspection>,
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayRuleResponse {
    pub id: String,
    /// Lower first; the first rule that matches decides.
    pub priority: i64,
    /// Host glob (`*.github.com`, `*`), case-insensitive, port ignored.
    pub host_pattern: String,
    /// Path glob (`/v1/*`); absent: any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern: Option<String>,
    /// Absent: any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    pub action: RuleAction,
    /// Requests per minute, per sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_rpm: Option<u32>,
    /// The stored secret to add to matching requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_strategy: Option<AuthStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `POST …/rules` (`host_pattern` required) and `PATCH …/rules/{id}` (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayRuleRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RuleAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_strategy: Option<AuthStrategy>,
}

/// One entry of a reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RulePriority {
    pub rule_id: String,
    pub priority: i64,
}

/// `POST …/rules/reorder`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReorderRulesRequest {
    pub rules: Vec<RulePriority>,
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
    pub action: EventAction,
    /// Status returned to the sandbox (0: the flow was reset).
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub latency_ms: f64,
    pub reason: String,
}

/// `GET /sandboxes/{sandbox_name}/gateway-events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatewayEventsResponse {
    pub events: Vec<GatewayEventResponse>,
}

/// Query of the decision log: events after `after_id`, or since a time, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
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
