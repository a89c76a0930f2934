//! Error bodies and the closed set of error codes.

use serde::{Deserialize, Serialize};

/// Error codes of the compute plane (a closed set; see the reference's `ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    AuthRequired,
    InvalidRequest,
    NotFound,
    ValidationError,
    SandboxNotFound,
    SandboxAlreadyExists,
    SandboxInvalidState,
    SandboxProvisioningFailed,
    ResourceNotFound,
    FileNotFound,
    CommandNotFound,
    ExecFailed,
    FileOperationError,
    ResourceUnavailable,
    AccessDenied,
    RateLimited,
    Timeout,
    Gone,
    BadGateway,
    InternalError,
}

impl ErrorCode {
    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::AuthRequired => 401,
            Self::AccessDenied => 403,
            Self::NotFound
            | Self::SandboxNotFound
            | Self::ResourceNotFound
            | Self::FileNotFound
            | Self::CommandNotFound => 404,
            Self::SandboxAlreadyExists | Self::SandboxInvalidState => 409,
            Self::Gone => 410,
            Self::ValidationError => 422,
            Self::InvalidRequest | Self::ExecFailed | Self::FileOperationError => 400,
            Self::RateLimited => 429,
            Self::BadGateway => 502,
            Self::ResourceUnavailable => 503,
            Self::Timeout => 504,
            Self::SandboxProvisioningFailed | Self::InternalError => 500,
        }
    }
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorResponse {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_error_body() {
        let e = ErrorResponse {
            code: ErrorCode::SandboxAlreadyExists,
            message: "sandbox demo already exists".into(),
            request_id: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"SANDBOX_ALREADY_EXISTS","message":"sandbox demo already exists"}"#
        );
        assert_eq!(ErrorCode::SandboxAlreadyExists.http_status(), 409);
        assert_eq!(ErrorCode::AuthRequired.http_status(), 401);
    }
}
