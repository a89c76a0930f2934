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

crate::closed::closed_set! {
    /// What a directory entry is.
    FileKind {
        File = "file",
        Directory = "directory",
        Symlink = "symlink",
        Other = "other",
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FileKind,
    /// Bytes (of the link itself for a symlink).
    pub size: u64,
    /// Permission bits, e.g. `0o644` = 420.
    pub mode: u32,
    /// Last modification, Unix seconds.
    pub modified_unix: i64,
}

/// `GET /sandboxes/{name}/files-list?path=` (extension): a directory's entries, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileListResponse {
    pub path: String,
    pub entries: Vec<FileEntry>,
}
