//! Snapshots: a sandbox's filesystem saved under a name (`/snapshots`).

use serde::{Deserialize, Serialize};

crate::closed::closed_set! {
    /// Where a snapshot is: `saving`, then `ready` (or `failed`, with a reason).
    SnapshotStatus {
        Saving = "saving",
        Ready = "ready",
        Failed = "failed",
    }
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotResponse {
    pub id: String,
    pub name: String,
    /// `saving`, then `ready` (or `failed`, with `status_reason`).
    pub status: SnapshotStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    /// What the snapshot adds on top of what it shares (its own layer, uncompressed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// sha256 of that layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Extension: the image the snapshot's filesystem started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Extension: why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Extension: it holds the sandbox's running processes too (a memory snapshot): sandboxes
    /// made from it start with them running.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory: bool,
}

/// `GET /snapshots/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaginatedSnapshotResponse {
    pub items: Vec<SnapshotResponse>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

/// `POST /snapshots/` (`Prefer: respond-async` answers at once with a `saving` snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSnapshotRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_name: Option<String>,
    /// Older form of `sandbox_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    /// Default: `SANDBOX-YYYYMMDD-HHMMSS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Extension: save the running sandbox's processes and memory too (CRIU), so that sandboxes
    /// made from the snapshot start with them running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<bool>,
}

/// Paging of the snapshot list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListSnapshotsQuery {
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// `POST /snapshots/import` (extension): the body is an OCI image archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ImportSnapshotQuery {
    /// Name of the new snapshot.
    pub name: String,
    /// Restore the running processes a memory snapshot's archive holds. CRIU restores them as
    /// root and does not treat them as hostile input: only for archives from a trusted maker.
    /// Without it the files alone are imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_memory: Option<bool>,
}
