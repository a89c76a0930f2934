//! Operations in place, for SFTP: open a file where it is (reads and writes at offsets),
//! stat, list, make and remove directories, remove, rename, change modes and times. Paths
//! resolve inside the root as every other (`openat2` with `RESOLVE_IN_ROOT`, so a symlink
//! leads somewhere in the sandbox, never out); entries named last are acted on through their
//! already-resolved parent, without following a final symlink; new entries belong to the
//! root's owner.

use std::fs::File;
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Mode, OFlags, Stat, Timespec, Timestamps};

use super::{FileError, SandboxRoot, components, io_at};

/// A directory entry and what it is (ids as seen inside the sandbox).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub stat: Stat,
}

impl SandboxRoot {
    /// The parent directory of `path` (resolved) and the last name.
    fn parent(&self, path: &str) -> Result<(OwnedFd, String), FileError> {
        let mut parts = components(path)?;
        let name = parts
            .pop()
            .ok_or_else(|| FileError::Invalid(format!("{path}: not on the root itself")))?;
        let dir = self
            .at(&parts, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(io_at(path))?;
        Ok((dir, name))
    }

    /// A host id as the sandbox sees it.
    pub fn to_inside(&self, host: u32) -> u32 {
        self.ids.to_inside(host)
    }

    fn own_ids(&self, st: &mut Stat) {
        st.st_uid = self.ids.to_inside(st.st_uid);
        st.st_gid = self.ids.to_inside(st.st_gid);
    }

    /// Open `path` where it is with `flags` (read, write, append, truncate); with `create`,
    /// a missing file is made with `mode`, owned by the root's owner.
    pub fn open_in_place(
        &self,
        path: &str,
        flags: OFlags,
        create: bool,
        exclusive: bool,
        mode: u32,
    ) -> Result<File, FileError> {
        let parts = components(path)?;
        if !exclusive {
            match self.at(&parts, flags) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(path)(e)),
            }
        }
        if !create {
            return Err(FileError::NotFound(path.to_string()));
        }
        let (dir, name) = self.parent(path)?;
        let fd = rustix::fs::openat(
            &dir,
            name.as_str(),
            flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .map_err(|e| io_at(path)(e.into()))?;
        rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
        )
        .map_err(|e| io_at(path)(e.into()))?;
        Ok(File::from(fd))
    }

    /// What `path` is; a final symlink itself unless `follow`.
    pub fn stat(&self, path: &str, follow: bool) -> Result<Stat, FileError> {
        let mut st = if follow {
            let fd = self
                .at(&components(path)?, OFlags::PATH)
                .map_err(io_at(path))?;
            rustix::fs::fstat(&fd)
        } else if components(path)?.is_empty() {
            let fd = self.at(&[], OFlags::PATH).map_err(io_at(path))?;
            rustix::fs::fstat(&fd)
        } else {
            let (dir, name) = self.parent(path)?;
            rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        }
        .map_err(|e| io_at(path)(e.into()))?;
        self.own_ids(&mut st);
        Ok(st)
    }

    /// The entries of directory `path` (without `.` and `..`).
    pub fn list(&self, path: &str) -> Result<Vec<Entry>, FileError> {
        let fd = self
            .at(&components(path)?, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(io_at(path))?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| io_at(path)(e.into()))?;
        let mut out = Vec::new();
        for ent in dir {
            let ent = ent.map_err(|e| io_at(path)(e.into()))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            if let Ok(mut st) = rustix::fs::statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                self.own_ids(&mut st);
                out.push(Entry { name, stat: st });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Make directory `path` (its parent must exist).
    pub fn mkdir(&self, path: &str, mode: u32) -> Result<(), FileError> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(mode & 0o777))
            .map_err(|e| io_at(path)(e.into()))?;
        self.own_at(&dir, &name);
        Ok(())
    }

    /// Remove a file or a symlink (`dir`: an empty directory).
    pub fn remove(&self, path: &str, dir: bool) -> Result<(), FileError> {
        let (parent, name) = self.parent(path)?;
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&parent, name.as_str(), flags).map_err(|e| io_at(path)(e.into()))
    }

    /// Move `from` to `to` (replacing a file there).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FileError> {
        let (a, an) = self.parent(from)?;
        let (b, bn) = self.parent(to)?;
        rustix::fs::renameat(&a, an.as_str(), &b, bn.as_str()).map_err(|e| io_at(from)(e.into()))
    }

    /// `path` itself (not a final symlink, which is refused), opened to change its metadata.
    fn for_metadata(&self, path: &str) -> Result<OwnedFd, FileError> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        self.at(&components(path)?, flags)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => FileError::Invalid(format!("{path} is a symlink")),
                _ => io_at(path)(e),
            })
    }

    /// Change the permission bits of `path`.
    pub fn chmod(&self, path: &str, mode: u32) -> Result<(), FileError> {
        let fd = self.for_metadata(path)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| io_at(path)(e.into()))
    }

    /// Set the access and modification times of `path` (unix seconds).
    pub fn utimes(&self, path: &str, atime: u32, mtime: u32) -> Result<(), FileError> {
        let fd = self.for_metadata(path)?;
        let ts = |s: u32| Timespec {
            tv_sec: i64::from(s),
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        };
        rustix::fs::futimens(&fd, &times).map_err(|e| io_at(path)(e.into()))
    }

    /// Where symlink `path` points.
    pub fn readlink(&self, path: &str) -> Result<String, FileError> {
        let (dir, name) = self.parent(path)?;
        let target = rustix::fs::readlinkat(&dir, name.as_str(), Vec::new())
            .map_err(|e| io_at(path)(e.into()))?;
        Ok(target.to_string_lossy().into_owned())
    }

    /// Make symlink `path` pointing at `target` (it resolves inside the sandbox when followed).
    pub fn make_symlink(&self, target: &str, path: &str) -> Result<(), FileError> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::symlinkat(target, &dir, name.as_str()).map_err(|e| io_at(path)(e.into()))?;
        self.own_at(&dir, &name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    fn root() -> (tempfile::TempDir, SandboxRoot) {
        let d = tempfile::tempdir().unwrap();
        let me = rustix::process::geteuid().as_raw();
        let r = SandboxRoot::open(d.path(), 0, islo_runtime::IdMap { base: me, size: 1 }).unwrap();
        (d, r)
    }

    #[test]
    fn files_are_read_and_written_in_place_and_symlinks_stay_inside() {
        let (d, r) = root();
        r.mkdir("/w", 0o755).unwrap();
        let mut f = r
            .open_in_place("/w/a", OFlags::RDWR, true, true, 0o644)
            .unwrap();
        f.write_all(b"hello world").unwrap();
        f.seek(SeekFrom::Start(6)).unwrap();
        f.write_all(b"there").unwrap();
        assert_eq!(std::fs::read(d.path().join("w/a")).unwrap(), b"hello there");
        assert!(
            r.open_in_place("/w/a", OFlags::RDWR, true, true, 0o644)
                .is_err(),
            "exclusive"
        );
        assert_eq!(r.stat("/w/a", true).unwrap().st_size, 11);
        assert_eq!(
            r.stat("/w/a", true).unwrap().st_uid,
            0,
            "ids as seen inside"
        );
        // A symlink out of the root resolves inside it.
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("w/escape")).unwrap();
        assert!(matches!(
            r.open_in_place("/w/escape", OFlags::RDONLY, false, false, 0),
            Err(FileError::NotFound(_))
        ));
        r.make_symlink("/w/a", "/w/link").unwrap();
        let mut s = String::new();
        r.open_in_place("/w/link", OFlags::RDONLY, false, false, 0)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello there");
        assert_eq!(r.readlink("/w/link").unwrap(), "/w/a");
        assert!(r.stat("/w/link", false).unwrap().st_mode & 0o170000 == 0o120000);
        let names: Vec<String> = r.list("/w").unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a", "escape", "link"]);
        r.rename("/w/a", "/w/b").unwrap();
        r.chmod("/w/b", 0o600).unwrap();
        assert_eq!(r.stat("/w/b", false).unwrap().st_mode & 0o777, 0o600);
        r.utimes("/w/b", 1000, 2000).unwrap();
        assert_eq!(r.stat("/w/b", false).unwrap().st_mtime, 2000);
        r.remove("/w/b", false).unwrap();
        assert!(r.remove("/w", true).is_err(), "not empty");
        r.remove("/w/link", false).unwrap();
        r.remove("/w/escape", false).unwrap();
        r.remove("/w", true).unwrap();
        assert!(
            std::fs::read_to_string("/etc/hostname").is_ok(),
            "the host's file untouched"
        );
    }
}
