//! File transfer into and out of running sandboxes (see [`crate::files`] for how paths are
//! kept inside them).

use islo_runtime::SandboxId;

use super::{App, AppError, Tenant};
use crate::files::{FileError, SandboxRoot};

impl From<FileError> for AppError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Invalid(m) => AppError::Validation(m),
            FileError::NotFound(_) => AppError::FileNotFound(e.to_string()),
            FileError::IsDir(_) | FileError::TooLarge { .. } => {
                AppError::FileOperation(e.to_string())
            }
            FileError::Io { .. } => AppError::FileOperation(e.to_string()),
        }
    }
}

impl App {
    /// The root of a running sandbox, for file transfer.
    pub fn files_root(&self, t: &Tenant, name: &str) -> Result<SandboxRoot, AppError> {
        let row = self.running(t, name)?;
        let root = self
            .driver
            .rootfs(&SandboxId(row.id.clone()))
            .ok_or_else(|| AppError::Internal(format!("sandbox {name}'s files are not mounted")))?;
        let ids = islo_runtime::IdMap::of(super::sandboxes::runtime_spec(&row)?.ids);
        SandboxRoot::open(&root, self.settings.uid, ids)
            .map_err(|e| AppError::Internal(format!("opening {name}'s files: {e}")))
    }
}
