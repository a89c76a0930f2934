//! SSH certificates (`/ssh/certificates`, an extension: the hosted service signs them out of
//! band).

use serde::{Deserialize, Serialize};

/// `POST /ssh/certificates`: sign the caller's public key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshCertificateRequest {
    /// An OpenSSH public key (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
    /// Validity in seconds (default 4 hours, at most 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A signed user certificate and what verifies the sandboxes' host keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshCertificateResponse {
    /// OpenSSH certificate (`ssh-ed25519-cert-v01@openssh.com AAAA…`).
    pub certificate: String,
    /// Users it is valid for inside sandboxes.
    pub principals: Vec<String>,
    /// RFC 3339.
    pub valid_before: String,
    /// The host CA public key: `@cert-authority *.islo KEY` in known_hosts.
    pub host_ca_public_key: String,
}
