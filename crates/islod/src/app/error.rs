//! Errors of the lifecycle, each with its API code.

use islo_api::{ErrorCode, SandboxStatus};
use islo_runtime::DriverError;

use crate::images::ImageError;
use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Validation(String),
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("sandbox {0} already exists")]
    AlreadyExists(String),
    #[error("request_id {0} was already used with a different request body")]
    RequestIdReused(String),
    #[error("sandbox {name} is {}; {hint}", status.as_str())]
    InvalidState {
        name: String,
        status: SandboxStatus,
        hint: &'static str,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A file the request names is not there.
    #[error("{0}")]
    FileNotFound(String),
    /// A file operation that cannot be done (a directory where a file is expected, …).
    #[error("{0}")]
    FileOperation(String),
    /// A clash with existing state (a snapshot name taken, a snapshot in use).
    #[error("{0}")]
    Conflict(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// A tenant's quota would be passed.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The host cannot hold what was asked.
    #[error("{0}")]
    HostFull(String),
    /// The sandbox's agent refused to start a command or session (unknown user, unusable
    /// workdir, no terminal).
    #[error("cannot start: {0}")]
    CannotStart(String),
    /// The sandbox's agent is gone or does not answer.
    #[error("{0}")]
    AgentUnavailable(String),
    #[error("sandbox provisioning failed: {0}")]
    Provisioning(String),
    /// A step of the back end failed.
    #[error("sandbox provisioning failed: {0}")]
    Driver(#[source] DriverError),
    /// A pause or resume failed (`what`: `pausing` or `resuming`).
    #[error("{what} sandbox {name} failed: {source}")]
    Checkpoint {
        what: &'static str,
        name: String,
        #[source]
        source: Box<DriverError>,
    },
    #[error("internal error: {0}")]
    Store(#[source] StoreError),
    #[error("internal error: {0}")]
    Ids(#[source] crate::ids::IdError),
    /// A sandbox's agent answered something unexpected.
    #[error("internal error: sandbox agent: {0}")]
    Agent(#[source] islo_agent::ProtoError),
    /// A file of islod's own (a scratch file, a key) could not be used.
    #[error("internal error: {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("internal error: a worker task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("internal error: {0}")]
    Internal(String),
    /// The cluster cannot take this now (etcd without a quorum, a node down or cordoned).
    #[error("{0}")]
    ClusterUnavailable(String),
}

impl AppError {
    /// The API error code (which fixes the HTTP status).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthorized => ErrorCode::AuthRequired,
            Self::Invalid(_) => ErrorCode::InvalidRequest,
            Self::Validation(_) => ErrorCode::ValidationError,
            Self::SandboxNotFound(_) => ErrorCode::SandboxNotFound,
            Self::NotFound(_) => ErrorCode::ResourceNotFound,
            Self::AlreadyExists(_) | Self::RequestIdReused(_) => ErrorCode::SandboxAlreadyExists,
            Self::InvalidState { .. } | Self::Conflict(_) => ErrorCode::SandboxInvalidState,
            Self::Forbidden(_) => ErrorCode::AccessDenied,
            Self::FileNotFound(_) => ErrorCode::FileNotFound,
            Self::QuotaExceeded(_) => ErrorCode::RateLimited,
            Self::HostFull(_) | Self::AgentUnavailable(_) | Self::ClusterUnavailable(_) => {
                ErrorCode::ResourceUnavailable
            }
            Self::FileOperation(_) => ErrorCode::FileOperationError,
            Self::CannotStart(_) => ErrorCode::ExecFailed,
            Self::Image(e) => match e {
                ImageError::InvalidReference(..)
                | ImageError::InsecureMirror(_)
                | ImageError::PrivateRegistry(_)
                | ImageError::NotFound(_) => ErrorCode::InvalidRequest,
                ImageError::Unpack { .. } | ImageError::DigestMismatch { .. } => {
                    ErrorCode::InvalidRequest
                }
                ImageError::Registry { .. } => ErrorCode::BadGateway,
                ImageError::HostFull => ErrorCode::ResourceUnavailable,
                ImageError::Io(_) | ImageError::Store(_) => ErrorCode::InternalError,
            },
            Self::Provisioning(_) | Self::Driver(_) => ErrorCode::SandboxProvisioningFailed,
            // What the sandbox's class cannot do is a state of it, not islod's failure.
            Self::Checkpoint { source, .. }
                if matches!(**source, DriverError::Unsupported { .. }) =>
            {
                ErrorCode::SandboxInvalidState
            }
            // A full disk is the host's (or the sandbox's) lack of room; else islod's failure.
            Self::Checkpoint { source, .. } if source.to_string().contains("No space left") => {
                ErrorCode::ResourceUnavailable
            }
            Self::Checkpoint { .. } => ErrorCode::InternalError,
            Self::Store(_)
            | Self::Ids(_)
            | Self::Agent(_)
            | Self::Io { .. }
            | Self::Join(_)
            | Self::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl AppError {
    /// A failure of islod's own file `what`, for `map_err`.
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exhausted(m) => Self::Provisioning(m),
            StoreError::Ledger(e @ crate::store::LedgerError::Unavailable(_)) => {
                Self::ClusterUnavailable(format!(
                    "{e}: nothing was changed; running sandboxes keep running, and reads answer \
                     from this node; try again once etcd has a quorum"
                ))
            }
            e => Self::Store(e),
        }
    }
}

impl From<crate::ids::IdError> for AppError {
    fn from(e: crate::ids::IdError) -> Self {
        match e {
            crate::ids::IdError::Exhausted { .. } => Self::HostFull(e.to_string()),
            e => Self::Ids(e),
        }
    }
}

impl From<DriverError> for AppError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::NotFound(id) => Self::SandboxNotFound(id.0),
            e @ DriverError::Unsupported { .. } => Self::Conflict(e.to_string()),
            other => Self::Driver(other),
        }
    }
}
