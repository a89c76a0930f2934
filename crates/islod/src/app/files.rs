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
    /// [`Self::files_root`], a paused sandbox woken first where its policy says so.
    pub async fn awake_files_root(&self, t: &Tenant, name: &str) -> Result<SandboxRoot, AppError> {
        self.awake(t, name).await?;
        self.files_root(t, name)
    }

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
        SandboxRoot::open(root.path(), uid, ids)
            .map_err(|e| AppError::Internal(format!("opening {name}'s files: {e}")))
    }
}

/// What a `stat` mode says an entry is.
fn kind_of(mode: u32) -> islo_api::FileKind {
    use islo_api::FileKind;
    match mode & 0o170000 {
        0o100000 => FileKind::File,
        0o040000 => FileKind::Directory,
        0o120000 => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

impl App {
    /// The entries of directory `path` in the running sandbox `name`, by name.
    pub fn list_files(
        &self,
        t: &Tenant,
        name: &str,
        path: &str,
    ) -> Result<islo_api::FileListResponse, AppError> {
        let entries = self
            .files_root(t, name)?
            .list(path)?
            .into_iter()
            .map(|e| islo_api::FileEntry {
                kind: kind_of(e.stat.st_mode),
                size: e.stat.st_size as u64,
                mode: e.stat.st_mode & 0o7777,
                modified_unix: e.stat.st_mtime,
                name: e.name,
            })
            .collect();
        Ok(islo_api::FileListResponse {
            path: path.to_string(),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use islo_api::FileKind;

    #[test]
    fn kinds_follow_the_mode_bits() {
        assert_eq!(super::kind_of(0o100644), FileKind::File);
        assert_eq!(super::kind_of(0o040755), FileKind::Directory);
        assert_eq!(super::kind_of(0o120777), FileKind::Symlink);
        assert_eq!(super::kind_of(0o020666), FileKind::Other);
    }
}
