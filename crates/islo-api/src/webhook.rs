//! Incoming webhooks (`/webhooks/incoming`): a URL that verifies a sender, picks a sandbox
//! from the event and acts on it (create it, remove it, forward the request to a port inside).
//! Secrets (HMAC keys, tokens, passwords) go in and come back only as `secret_ref` names and
//! `*_redacted` flags.

use serde::{Deserialize, Serialize};

/// A secret of a verifier: a label and its value (never answered).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookSecret {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecret({:?}, <redacted>)", self.name)
    }
}

/// Where a value of the request is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ValueSource {
    Header {
        name: String,
    },
    /// `param=value` inside a header (e.g. `t=…,v1=…`).
    HeaderParam {
        header: String,
        param: String,
    },
    Query {
        name: String,
    },
    JsonPath {
        path: String,
    },
    RawBody,
    Method,
    Path,
}

/// A piece of what an HMAC signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignedPart {
    Source { source: ValueSource },
    Literal { value: String },
}

/// What an HMAC is computed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignedPayload {
    RawBody,
    Template { parts: Vec<SignedPart> },
}

/// A timestamp the request carries (unix seconds), and how far from now it may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimestampCheck {
    pub source: ValueSource,
    pub tolerance_seconds: i64,
}

/// `sha256` over the signed payload, compared in `hex` after an optional prefix (`sha256=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HmacVerifier {
    /// `sha256`.
    pub algorithm: String,
    /// `hex`.
    pub encoding: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    pub secret: WebhookSecret,
    pub signature: ValueSource,
    pub signed_payload: SignedPayload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimestampCheck>,
}

/// A header that must carry a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeaderEqualsVerifier {
    pub header: String,
    pub value: WebhookSecret,
}

/// A query parameter that must carry a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryEqualsVerifier {
    pub query: String,
    pub value: WebhookSecret,
}

/// `Authorization: Basic` with these credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BasicVerifier {
    pub username: WebhookSecret,
    pub password: WebhookSecret,
}

/// `Authorization: Bearer` with this token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BearerStaticVerifier {
    pub token: WebhookSecret,
}

/// A JWT checked against a key set (refused by islod: it fetches no key sets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JwtVerifier {
    pub jwks_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The sender's address is in one of these (`a.b.c.d/n`, IPv6 too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IpAllowlistVerifier {
    pub cidrs: Vec<String>,
}

/// One way of checking the sender (inside `all` / `any`, tagged by `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Verifier {
    Hmac(HmacVerifier),
    HeaderEquals(HeaderEqualsVerifier),
    QueryEquals(QueryEqualsVerifier),
    Basic(BasicVerifier),
    BearerStatic(BearerStaticVerifier),
    Jwt(JwtVerifier),
    IpAllowlist(IpAllowlistVerifier),
}

/// How the sender is checked (tagged by `auth_type`): one verifier, all or any of several, or
/// none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "auth_type", rename_all = "snake_case")]
pub enum WebhookAuth {
    None,
    Hmac(HmacVerifier),
    HeaderEquals(HeaderEqualsVerifier),
    QueryEquals(QueryEqualsVerifier),
    Basic(BasicVerifier),
    BearerStatic(BearerStaticVerifier),
    Jwt(JwtVerifier),
    IpAllowlist(IpAllowlistVerifier),
    All { verifiers: Vec<Verifier> },
    Any { verifiers: Vec<Verifier> },
}

/// What makes two deliveries the same event (a replay is acknowledged, not acted on again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum IdempotencyConfig {
    Header { name: String },
    HeaderParam { header: String, param: String },
    JsonPath { path: String },
    BodySha256,
}

/// Which sandbox an event is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "target_type", rename_all = "snake_case")]
pub enum WebhookTarget {
    FixedSandboxName {
        sandbox_name: String,
    },
    SandboxNameFromEvent {
        source: ValueSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        required_prefix: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_pattern: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowed_names: Option<Vec<String>>,
    },
}

/// The sandbox `ensure_sandbox` creates when it is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookSandboxTemplate {
    pub image: String,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_gb: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_scripts: Option<Vec<crate::SetupScript>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<crate::SourceSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<serde_json::Value>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action_type", rename_all = "snake_case")]
pub enum WebhookAction {
    /// Create the sandbox if it does not exist (start it if stopped).
    EnsureSandbox {
        template: WebhookSandboxTemplate,
    },
    /// Start it if stopped.
    ResumeSandbox,
    /// Refused: this islod cannot pause yet.
    PauseSandbox,
    DeleteSandbox,
    /// Forward the original request (method, headers, body) to a port inside.
    DeliverToPort {
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto_resume: Option<String>,
    },
    /// Refused: islod runs no jobs.
    TriggerJob {
        job_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<serde_json::Value>,
    },
}

/// `{when?, actions}`: when the condition holds (or always), run the actions in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookRule {
    /// `{json_path, equals}`, or `{op: equals|not_equals|exists|not_exists|contains|all|any|not, …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<serde_json::Value>,
    pub actions: Vec<WebhookAction>,
}

crate::closed::closed_set! {
    /// Whether a webhook accepts deliveries.
    WebhookStatus {
        Active = "active",
        Disabled = "disabled",
    }
}

/// `POST /webhooks/incoming`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateWebhookRequest {
    pub name: String,
    pub auth: WebhookAuth,
    pub idempotency: IdempotencyConfig,
    pub target: WebhookTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<WebhookRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WebhookStatus>,
}

/// `PATCH /webhooks/incoming/{webhook_id}`: what is given replaces.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateWebhookRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<WebhookAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<WebhookTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<WebhookRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WebhookStatus>,
}

/// A webhook as answered: its auth with secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncomingWebhook {
    pub id: String,
    pub name: String,
    /// Where senders post (no islo credentials: the auth above is the check).
    pub receiver_url: String,
    /// `auth` with each secret as `secret_ref {name}` and a `*_redacted` flag.
    pub auth: serde_json::Value,
    pub idempotency: IdempotencyConfig,
    pub target: WebhookTarget,
    pub rules: Vec<WebhookRule>,
    pub status: WebhookStatus,
    pub created_at: String,
}

crate::closed::closed_set! {
    /// Where a delivery is.
    IngressEventStatus {
        Pending = "pending",
        Processing = "processing",
        Delivered = "delivered",
        Failed = "failed",
        Exhausted = "exhausted",
    }
}

crate::closed::closed_set! {
    /// One action's attempt.
    IngressActionStatus {
        Pending = "pending",
        Completed = "completed",
        Failed = "failed",
    }
}

/// One attempt at one action of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookActionAttempt {
    pub action_index: u32,
    pub action_key: String,
    pub status: IngressActionStatus,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A delivery in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDeliverySummary {
    pub event_id: String,
    pub webhook_id: String,
    pub status: IngressEventStatus,
    pub attempts: u32,
    pub idempotency_key: String,
    pub method: String,
    /// When it arrived (and was checked; a delivery that failed the check is `failed` with the
    /// reason in `last_error`).
    pub verified_at: String,
    pub next_attempt_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_event_id: Option<String>,
}

/// A delivery, whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDeliveryDetail {
    #[serde(flatten)]
    pub summary: WebhookDeliverySummary,
    pub resolved_sandbox_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_sandbox_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    pub body_truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_label: Option<String>,
    pub action_attempts: Vec<WebhookActionAttempt>,
}

/// `GET /webhooks/incoming/{webhook_id}/deliveries`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct DeliveriesQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// RFC 3339: received at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// RFC 3339: received before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// What the receiver answers a sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookReceipt {
    pub event_id: String,
    pub status: IngressEventStatus,
    /// A replay of an event already received: acknowledged, not acted on again.
    pub duplicate: bool,
}
