//! API keys (`/api-keys`, the control plane's `islo api-key`): a key belongs to one tenant,
//! its secret is answered once, at creation, and it can be deactivated, reactivated or
//! deleted; deactivating or deleting one also ends the session tokens it was exchanged for.

use serde::{Deserialize, Serialize};

/// `POST /api-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateApiKeyRequest {
    /// A label (1–64 characters).
    pub name: String,
    /// Days until it stops working (1–3650; default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
    /// The tenant it acts for (default: the caller's). Only the installation's administrator
    /// (a caller on islod's unix socket) may name another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

crate::closed::closed_set! {
    /// Whether a key works.
    ApiKeyStatus {
        Active = "active",
        Inactive = "inactive",
        Expired = "expired",
    }
}

/// A key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyResponse {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub status: ApiKeyStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The answer to a create: the key and, this once, its secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKeyResponse {
    #[serde(flatten)]
    pub key: ApiKeyResponse,
    /// The secret (`islo_key_…`); islod keeps only its hash.
    pub api_key: String,
}

impl std::fmt::Debug for CreatedApiKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKeyResponse")
            .field("key", &self.key)
            .field("api_key", &"<redacted>")
            .finish()
    }
}
