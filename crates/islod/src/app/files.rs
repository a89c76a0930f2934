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
        self.files_root_as(t, name, self.settings.uid)
    }

    /// The root of a running sandbox for SFTP as `user` (`root`, or the sandbox user), and
    /// that user's home as `/etc/passwd` inside says (else `/`).
    pub fn sftp_root(
        &self,
        t: &Tenant,
        name: &str,
        user: &str,
    ) -> Result<(SandboxRoot, String), AppError> {
        let uid = if user == "root" { 0 } else { self.settings.uid };
        let root = self.files_root_as(t, name, uid)?;
        let passwd = root
            .read_bounded("/etc/passwd", 1 << 20)
            .unwrap_or_default();
        let home = String::from_utf8_lossy(&passwd)
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 6 && f[0] == user)
            .map(|f| f[5].to_string())
            .filter(|h| h.starts_with('/'))
            .unwrap_or_else(|| "/".into());
        Ok((root, home))
    }

    fn files_root_as(&self, t: &Tenant, name: &str, uid: u32) -> Result<SandboxRoot, AppError> {
        let row = self.running(t, name)?;
        let root = self
            .driver
            .rootfs(&SandboxId(row.id.clone()))
            .ok_or_else(|| AppError::Internal(format!("sandbox {name}'s files are not mounted")))?;
        let ids = islo_runtime::IdMap::of(super::sandboxes::runtime_spec(&row)?.ids);
        SandboxRoot::open(&root, uid, ids)
            .map_err(|e| AppError::Internal(format!("opening {name}'s files: {e}")))
    }
}
