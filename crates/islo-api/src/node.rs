//! Extension: the nodes of a cluster (`GET /nodes`; `islod nodes`). A single host lists
//! itself as its one node.

use serde::{Deserialize, Serialize};

/// How a node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeHealth {
    /// Registered, taking new sandboxes.
    Ready,
    /// Registered; no new sandboxes land on it.
    Cordoned,
    /// Registered; no new sandboxes, and its sandboxes are on their way off it.
    Draining,
    /// Its lease lapsed: it died or lost the cluster; its sandboxes are not reachable.
    Lost,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeResponse {
    pub name: String,
    pub health: NodeHealth,
    /// Where the other nodes reach it (empty on a single host).
    #[serde(default)]
    pub advertise: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Its last heartbeat (while registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<String>,
    /// What the host has.
    pub vcpus: u64,
    pub memory_mb: u64,
    pub disk_gb: u64,
    /// Sandboxes recorded on it (any status but deleted), and those running.
    pub sandboxes: u64,
    pub running: u64,
}

/// `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeListResponse {
    /// False on a single host.
    pub clustered: bool,
    /// The node that answered.
    pub answered_by: String,
    pub nodes: Vec<NodeResponse>,
}
