//! File transfer (`/sandboxes/{name}/files` and `/files-archive`).

use serde::{Deserialize, Serialize};

/// The path a file call works on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct FilePathQuery {
    /// Absolute path inside the sandbox.
    pub path: String,
}

/// Answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileUploadStatusResponse {
    /// `success`.
    pub status: String,
    /// Extension: bytes written (a file) or entries unpacked (an archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<u64>,
}
