//! The wire contract of islo: what islod accepts and answers, shared by the server, the
//! client, the CLI and the tests. Names and shapes follow the Islo API so its public SDKs work
//! against islod; additions are marked as extensions. Serde only (OpenAPI schemas behind the
//! `openapi` feature, which only the server enables).

mod agent;
mod agent_session;
mod audit;
mod closed;
mod environment;
mod error;
mod exec;
mod files;
mod gateway;
mod keys;
mod node;
mod sandbox;
mod secrets;
mod session;
mod share;
mod snapshot;
mod ssh;
pub mod ui;
mod webhook;

pub use agent::{AgentProfile, AgentProfilesResponse};
pub use agent_session::{
    AgentEventsQuery, AgentSessionEventResponse, AgentSessionPlace, AgentSessionResponse,
    AgentSessionsQuery,
};
pub use audit::{
    ExecLogLineResponse, ExecLogsQuery, ExecLogsResponse, ExecSessionResponse, ExecSessionsQuery,
};
pub use environment::{
    CreateEnvironmentRequest, EntryKind, EntryPlacement, EnvironmentEntryInput,
    EnvironmentEntryResponse, EnvironmentGatewayRule, EnvironmentListItem, EnvironmentResponse,
    EnvironmentRuleResponse, UpdateEnvironmentRequest,
};
pub use error::{ErrorCode, ErrorResponse};
pub use exec::{ExecRequest, ExecResponse, ExecResultResponse, ExecStatus, STREAM_CAP_BYTES};
pub use files::{FileEntry, FileKind, FileListResponse, FilePathQuery, FileUploadStatusResponse};
pub use gateway::{
    AuthMode, AuthStrategy, EventAction, GatewayEventResponse, GatewayEventsQuery,
    GatewayEventsResponse, GatewayProfileDetailResponse, GatewayProfileRequest,
    GatewayProfileResponse, GatewayRuleRequest, GatewayRuleResponse, ReorderRulesRequest,
    RuleAction, RulePriority, TlsInspection,
};
pub use keys::{ApiKeyResponse, ApiKeyStatus, CreateApiKeyRequest, CreatedApiKeyResponse};
pub use node::{NodeHealth, NodeListResponse, NodeResponse};
pub use sandbox::{
    AutoResume, CreateSandboxRequest, CreationEvent, CreationPhase, DoctorCheck, DoctorReport,
    HostIds, ImagePullEvent, ImagePullRequest, Isolation, LifecyclePolicy, ListSandboxesQuery,
    PaginatedSandboxResponse, SandboxResponse, SandboxSpec, SandboxStatus, ServerInfo, SetupScript,
    SetupStepResult, SetupStepStatus, SourceSpec, TokenRequest, TokenResponse, limits,
};
pub use secrets::{SecretRequest, SecretResponse, SecretsResponse};
pub use session::{
    CreateSessionRequest, CreateSessionResponse, ListSessionsResponse, PTY_PROTOCOL_VERSION,
    PtyExit, PtyFrame, PtyOpen, PtySize, SessionInfo, SessionStatus,
};
pub use share::{
    CreateShareRequest, SHARE_TTL_DEFAULT, SHARE_TTL_MAX, SHARE_TTL_MIN, ShareRequestRecord,
    ShareResponse,
};
pub use snapshot::{
    CreateSnapshotRequest, ImportSnapshotQuery, ListSnapshotsQuery, PaginatedSnapshotResponse,
    SnapshotResponse, SnapshotStatus,
};
pub use ssh::{SshCertificateRequest, SshCertificateResponse};
pub use webhook::{
    BasicVerifier, BearerStaticVerifier, CreateWebhookRequest, DeliveriesQuery,
    HeaderEqualsVerifier, HmacVerifier, IdempotencyConfig, IncomingWebhook, IngressActionStatus,
    IngressEventStatus, IpAllowlistVerifier, JwtVerifier, QueryEqualsVerifier, SignedPart,
    SignedPayload, TimestampCheck, UpdateWebhookRequest, ValueSource, Verifier, WebhookAction,
    WebhookActionAttempt, WebhookAuth, WebhookDeliveryDetail, WebhookDeliverySummary,
    WebhookReceipt, WebhookRule, WebhookSandboxTemplate, WebhookSecret, WebhookStatus,
    WebhookTarget,
};

/// Deserialize an env map whose values may be `null` (the SDKs allow it): nulls are dropped.
pub(crate) fn env_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::collections::BTreeMap<String, String>>, D::Error> {
    use serde::Deserialize;
    let raw: Option<std::collections::BTreeMap<String, Option<String>>> = Option::deserialize(d)?;
    Ok(raw.map(|m| {
        m.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }))
}

/// Header a client may send to make a create idempotent without a body field (extension).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
