//! SFTP served by islod itself (so `sftp` and `scp` work in any image, scratch included):
//! every operation goes to the sandbox's files from the host side through [`SandboxRoot`]
//! (paths resolve inside the sandbox's root, new files belong to the SSH user), and reads
//! and writes at offsets run off the async threads.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use rustix::fs::{OFlags, Stat};

use crate::files::{FileError, SandboxRoot};

/// Bytes of one read at most (clients ask for 32 KiB to 256 KiB).
const MAX_READ: u32 = 256 * 1024;

enum Open {
    File(Arc<std::fs::File>),
    /// A directory's entries, answered once.
    Dir(Option<Vec<File>>),
}

/// One SFTP session.
pub struct Sftp {
    root: Arc<SandboxRoot>,
    home: String,
    open: HashMap<String, Open>,
    next: u64,
}

fn reply(e: FileError) -> StatusReply {
    let code = match &e {
        FileError::NotFound(_) => StatusCode::NoSuchFile,
        FileError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            StatusCode::PermissionDenied
        }
        _ => StatusCode::Failure,
    };
    code.with_message(e.to_string())
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn attrs(st: &Stat) -> FileAttributes {
    FileAttributes {
        size: Some(st.st_size as u64),
        uid: Some(st.st_uid),
        user: None,
        gid: Some(st.st_gid),
        group: None,
        permissions: Some(st.st_mode),
        atime: Some(st.st_atime as u32),
        mtime: Some(st.st_mtime as u32),
    }
}

/// `path` (absolute, or relative to `home`) in its normal form: `.` and `..` applied.
pub fn normalize(home: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{home}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

impl Sftp {
    pub fn new(root: SandboxRoot, home: String) -> Self {
        Self {
            root: Arc::new(root),
            home,
            open: HashMap::new(),
            next: 0,
        }
    }

    fn path(&self, p: &str) -> String {
        normalize(&self.home, p)
    }

    fn keep(&mut self, o: Open) -> String {
        self.next += 1;
        let h = format!("h{}", self.next);
        self.open.insert(h.clone(), o);
        h
    }

    fn file(&self, handle: &str) -> Result<Arc<std::fs::File>, StatusReply> {
        match self.open.get(handle) {
            Some(Open::File(f)) => Ok(f.clone()),
            _ => Err(StatusCode::Failure.with_message("no such open file")),
        }
    }

    fn set(&self, path: &str, a: &FileAttributes) -> Result<(), FileError> {
        if let Some(size) = a.size {
            let f = self
                .root
                .open_in_place(path, OFlags::WRONLY, false, false, 0)?;
            f.set_len(size).map_err(|e| FileError::Io {
                path: path.into(),
                source: e,
            })?;
        }
        if let Some(mode) = a.permissions {
            self.root.chmod(path, mode)?;
        }
        if let (Some(at), Some(mt)) = (a.atime, a.mtime) {
            self.root.utimes(path, at, mt)?;
        }
        Ok(())
    }
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _v: u32,
        _ext: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        a: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = self.path(&filename);
        let mut flags = match (
            pflags.contains(OpenFlags::READ),
            pflags.contains(OpenFlags::WRITE),
        ) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            _ => OFlags::RDONLY,
        };
        if pflags.contains(OpenFlags::APPEND) {
            flags |= OFlags::APPEND;
        }
        if pflags.contains(OpenFlags::TRUNCATE) {
            flags |= OFlags::TRUNC;
        }
        let create = pflags.contains(OpenFlags::CREATE);
        let excl = pflags.contains(OpenFlags::EXCLUDE);
        let mode = a.permissions.unwrap_or(0o644);
        let root = self.root.clone();
        let f = tokio::task::spawn_blocking(move || {
            root.open_in_place(&path, flags | OFlags::NONBLOCK, create, excl, mode)
        })
        .await
        .map_err(|_| StatusReply::from(StatusCode::Failure))?
        .map_err(reply)?;
        let handle = self.keep(Open::File(Arc::new(f)));
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        self.open.remove(&handle);
        Ok(ok(id))
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let f = self.file(&handle)?;
        let data = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len.min(MAX_READ) as usize];
            f.read_at(&mut buf, offset).map(|n| {
                buf.truncate(n);
                buf
            })
        })
        .await
        .map_err(|_| StatusReply::from(StatusCode::Failure))?
        .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        if data.is_empty() && len > 0 {
            return Err(StatusCode::Eof.into());
        }
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let f = self.file(&handle)?;
        tokio::task::spawn_blocking(move || f.write_all_at(&data, offset))
            .await
            .map_err(|_| StatusReply::from(StatusCode::Failure))?
            .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let st = self.root.stat(&self.path(&path), false).map_err(reply)?;
        Ok(Attrs {
            id,
            attrs: attrs(&st),
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let st = self.root.stat(&self.path(&path), true).map_err(reply)?;
        Ok(Attrs {
            id,
            attrs: attrs(&st),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let f = self.file(&handle)?;
        let mut st =
            rustix::fs::fstat(&*f).map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        st.st_uid = self.root.to_inside(st.st_uid);
        st.st_gid = self.root.to_inside(st.st_gid);
        Ok(Attrs {
            id,
            attrs: attrs(&st),
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        a: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.set(&self.path(&path), &a).map_err(reply)?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        a: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let f = self.file(&handle)?;
        if let Some(size) = a.size {
            f.set_len(size)
                .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        }
        if let Some(mode) = a.permissions {
            rustix::fs::fchmod(&*f, rustix::fs::Mode::from_raw_mode(mode & 0o7777))
                .map_err(|e| StatusCode::Failure.with_message(e.to_string()))?;
        }
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let entries = self.root.list(&self.path(&path)).map_err(reply)?;
        let files = entries
            .into_iter()
            .map(|e| File::new(e.name, attrs(&e.stat)))
            .collect();
        let handle = self.keep(Open::Dir(Some(files)));
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.open.get_mut(&handle) {
            Some(Open::Dir(files)) => match files.take() {
                Some(files) => Ok(Name { id, files }),
                None => Err(StatusCode::Eof.into()),
            },
            _ => Err(StatusCode::Failure.with_message("no such open directory")),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        self.root
            .remove(&self.path(&filename), false)
            .map_err(reply)?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        a: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.root
            .mkdir(&self.path(&path), a.permissions.unwrap_or(0o755))
            .map_err(reply)?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        self.root.remove(&self.path(&path), true).map_err(reply)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![File::dummy(self.path(&path))],
        })
    }

    async fn rename(&mut self, id: u32, from: String, to: String) -> Result<Status, Self::Error> {
        self.root
            .rename(&self.path(&from), &self.path(&to))
            .map_err(reply)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let target = self.root.readlink(&self.path(&path)).map_err(reply)?;
        Ok(Name {
            id,
            files: vec![File::dummy(target)],
        })
    }

    async fn symlink(
        &mut self,
        id: u32,
        link: String,
        target: String,
    ) -> Result<Status, Self::Error> {
        self.root
            .make_symlink(&target, &self.path(&link))
            .map_err(reply)?;
        Ok(ok(id))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_made_absolute_and_normal() {
        let n = |p| super::normalize("/home/islo", p);
        assert_eq!(n("."), "/home/islo");
        assert_eq!(n("a/./b/../c"), "/home/islo/a/c");
        assert_eq!(n("/../../etc/x"), "/etc/x");
        assert_eq!(n("../../.."), "/");
    }
}
