//! Files inside a running sandbox, reached from the host through its root directory.
//!
//! Everything under that root belongs to code we do not trust, and it may change paths while
//! we use them. Every path is therefore resolved by the kernel with `openat2` and
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`: `..` and symlinks (absolute
//! or relative) resolve inside the sandbox's root, never above it, so no race can lead a
//! read or write to a host file. New entries are made relative to an already-resolved parent
//! directory, final components are never followed when writing, and only regular files are
//! read (a FIFO would block the reader). What is created belongs to the sandbox user.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// Why a file operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}: no such file or directory in the sandbox")]
    NotFound(String),
    #[error("{0} is a directory (use files-archive for directories)")]
    IsDir(String),
    #[error("{path} is larger than the {max} bytes islod reads of it")]
    TooLarge { path: String, max: u64 },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

fn io_at(path: &str) -> impl Fn(io::Error) -> FileError + '_ {
    move |source| match source.kind() {
        io::ErrorKind::NotFound => FileError::NotFound(path.to_string()),
        _ => FileError::Io {
            path: path.to_string(),
            source,
        },
    }
}

/// An absolute path, as components without `..` (refused) or `.`.
pub fn components(path: &str) -> Result<Vec<String>, FileError> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(FileError::Invalid(format!(
            "path must be absolute, got {path:?}"
        )));
    }
    let mut out = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(FileError::Invalid(format!(
                    "path {path:?} climbs out with '..'"
                )));
            }
        }
    }
    Ok(out)
}

/// A sandbox's root, and the owner of what is created in it.
pub struct SandboxRoot {
    root: OwnedFd,
    uid: u32,
    gid: u32,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

impl SandboxRoot {
    pub fn open(root: &Path, uid: u32, gid: u32) -> io::Result<Self> {
        let root = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { root, uid, gid })
    }

    /// Resolve `parts` (joined) inside the root.
    fn at(&self, parts: &[String], flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if parts.is_empty() {
            ".".to_string()
        } else {
            parts.join("/")
        };
        Ok(rustix::fs::openat2(
            &self.root,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?)
    }

    /// A regular file for reading, and its size.
    pub fn read(&self, path: &str) -> Result<(File, u64), FileError> {
        let parts = components(path)?;
        let fd = self
            .at(&parts, OFlags::RDONLY | OFlags::NONBLOCK)
            .map_err(io_at(path))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io_at(path)(e.into()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Ok((File::from(fd), st.st_size as u64)),
            FileType::Directory => Err(FileError::IsDir(path.to_string())),
            _ => Err(FileError::Invalid(format!("{path} is not a regular file"))),
        }
    }

    /// The whole regular file `path`, refused when it is (or grows while read) larger than
    /// `max` bytes: the sandbox decides how large its files are.
    pub fn read_bounded(&self, path: &str, max: u64) -> Result<Vec<u8>, FileError> {
        let (f, len) = self.read(path)?;
        let too_large = || FileError::TooLarge {
            path: path.to_string(),
            max,
        };
        if len > max {
            return Err(too_large());
        }
        let mut out = Vec::with_capacity(len as usize);
        f.take(max + 1).read_to_end(&mut out).map_err(io_at(path))?;
        if out.len() as u64 > max {
            return Err(too_large());
        }
        Ok(out)
    }

    /// The directory `parts`, created (with its parents) when missing.
    fn mkdirs(&self, parts: &[String], path: &str) -> Result<OwnedFd, FileError> {
        let mut dir = self
            .at(&[], OFlags::PATH | OFlags::DIRECTORY)
            .map_err(io_at(path))?;
        for (i, name) in parts.iter().enumerate() {
            match rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) => self.own_at(&dir, name),
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io_at(path)(e.into())),
            }
            dir = self
                .at(&parts[..=i], OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENOTDIR) => FileError::Invalid(format!(
                        "{path}: /{} is not a directory",
                        parts[..=i].join("/")
                    )),
                    _ => io_at(path)(e),
                })?;
        }
        Ok(dir)
    }

    /// Create (or truncate) the regular file `path` with `mode`, parents created; its final
    /// component is never followed.
    pub fn create(&self, path: &str, mode: u32) -> Result<File, FileError> {
        let mut parts = components(path)?;
        let name = parts
            .pop()
            .ok_or_else(|| FileError::Invalid("cannot write to /".into()))?;
        let dir = self.mkdirs(&parts, path)?;
        let fd = rustix::fs::openat(
            &dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => {
                FileError::Invalid(format!("{path} is a symlink; refusing to write through it"))
            }
            rustix::io::Errno::ISDIR => FileError::IsDir(path.to_string()),
            e => io_at(path)(e.into()),
        })?;
        let own = |e: rustix::io::Errno| io_at(path)(e.into());
        rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
        )
        .map_err(own)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o777)).map_err(own)?;
        Ok(File::from(fd))
    }

    /// Put `contents` at `path` (parents created) by writing a new file beside it and renaming
    /// it over the old entry, so a symlink there is replaced, never followed.
    pub fn replace(&self, path: &str, mode: u32, contents: &[u8]) -> Result<(), FileError> {
        let mut parts = components(path)?;
        let name = parts
            .pop()
            .ok_or_else(|| FileError::Invalid("cannot write to /".into()))?;
        let dir = self.mkdirs(&parts, path)?;
        let tmp = format!(".{name}.islo-{}", std::process::id());
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        let fd = rustix::fs::openat(
            &dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .map_err(|e| io_at(path)(e.into()))?;
        let mut f = File::from(fd);
        let written = f
            .write_all(contents)
            .and_then(|()| {
                rustix::fs::fchown(
                    &f,
                    Some(rustix::fs::Uid::from_raw(self.uid)),
                    Some(rustix::fs::Gid::from_raw(self.gid)),
                )
                .map_err(Into::into)
            })
            .and_then(|()| {
                rustix::fs::fchmod(&f, Mode::from_raw_mode(mode & 0o777)).map_err(Into::into)
            })
            .and_then(|()| {
                rustix::fs::renameat(&dir, tmp.as_str(), &dir, name.as_str()).map_err(Into::into)
            });
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
            return Err(io_at(path)(e));
        }
        Ok(())
    }

    /// Write the directory `path` as a gzipped tar (paths relative to it) into `out`.
    pub fn tar_dir(&self, path: &str, out: impl Write) -> Result<u64, FileError> {
        let parts = components(path)?;
        let dir = self
            .at(&parts, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOTDIR) => FileError::Invalid(format!("{path} is not a directory")),
                _ => io_at(path)(e),
            })?;
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut count = 0;
        walk(dir, &mut tar, &mut count).map_err(io_at(path))?;
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .and_then(|mut w| w.flush())
            .map_err(io_at(path))?;
        Ok(count)
    }

    /// Unpack a gzipped tar into the directory `path` (created if missing). Entries with
    /// `..` are refused; symlinks are made as they are (they resolve inside the sandbox);
    /// devices and hard links are skipped. Returns (entries written, entries skipped).
    pub fn untar_into(&self, path: &str, archive: impl Read) -> Result<(u64, u64), FileError> {
        let base = components(path)?;
        self.mkdirs(&base, path)?;
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        let bad = |e: io::Error| FileError::Invalid(format!("not a valid tar.gz archive: {e}"));
        let (mut written, mut skipped) = (0, 0);
        for entry in a.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let rel = components(&format!("/{name}")).map_err(|_| {
                FileError::Invalid(format!("archive entry {name:?} climbs out with '..'"))
            })?;
            if rel.is_empty() {
                continue;
            }
            let full: Vec<String> = base.iter().chain(&rel).cloned().collect();
            let shown = format!("/{}", full.join("/"));
            let mode = entry.header().mode().unwrap_or(0o644);
            match entry.header().entry_type() {
                tar::EntryType::Directory => drop(self.mkdirs(&full, &shown)?),
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut f = self.create(&shown, mode)?;
                    io::copy(&mut entry, &mut f).map_err(io_at(&shown))?;
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name()
                        .map_err(bad)?
                        .unwrap_or_default()
                        .into_owned();
                    self.symlink(&full, &target, &shown)?;
                }
                _ => {
                    skipped += 1;
                    continue;
                }
            }
            written += 1;
        }
        Ok((written, skipped))
    }

    fn symlink(&self, full: &[String], target: &Path, shown: &str) -> Result<(), FileError> {
        let (name, parent) = full
            .split_last()
            .ok_or_else(|| FileError::Invalid("empty link name".into()))?;
        let dir = self.mkdirs(parent, shown)?;
        match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io_at(shown)(e.into())),
        }
        rustix::fs::symlinkat(target, &dir, name.as_str()).map_err(|e| io_at(shown)(e.into()))?;
        self.own_at(&dir, name);
        Ok(())
    }

    /// Give the entry `name` of `dir` (not followed) to the sandbox user.
    fn own_at(&self, dir: &OwnedFd, name: &str) {
        let _ = rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
    }
}

/// How deep a directory tree `tar_dir` writes: one descriptor stays open per level, and the
/// sandbox chooses the depth.
pub const MAX_DEPTH: usize = 1024;

/// A directory being written: its descriptor, its path in the archive and the names left.
struct Level {
    dir: OwnedFd,
    prefix: PathBuf,
    names: std::vec::IntoIter<String>,
}

impl Level {
    fn new(dir: OwnedFd, prefix: PathBuf) -> io::Result<Self> {
        let mut names: Vec<String> = rustix::fs::Dir::read_from(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        Ok(Self {
            dir,
            prefix,
            names: names.into_iter(),
        })
    }
}

/// Add the entries below `dir` (an open directory), depth first in name order, without
/// following links; an explicit stack, so a deep tree cannot exhaust this thread's.
fn walk(dir: OwnedFd, tar: &mut tar::Builder<impl Write>, count: &mut u64) -> io::Result<()> {
    let mut stack = vec![Level::new(dir, PathBuf::new())?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.next() else {
            stack.pop();
            continue;
        };
        let rel = top.prefix.join(&name);
        match add_entry(&top.dir, &name, &rel, tar)? {
            Added::Dir(sub) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(io::Error::other(format!(
                        "the tree is deeper than {MAX_DEPTH} directories (at {})",
                        rel.display()
                    )));
                }
                stack.push(Level::new(sub, rel)?);
            }
            Added::Leaf => {}
            Added::Skipped => continue,
        }
        *count += 1;
    }
    Ok(())
}

/// What [`add_entry`] did.
enum Added {
    /// A directory, open for its children.
    Dir(OwnedFd),
    Leaf,
    /// A socket or a device, left out.
    Skipped,
}

/// Add the entry `name` of `dir` as `rel`.
fn add_entry(
    dir: &OwnedFd,
    name: &str,
    rel: &Path,
    tar: &mut tar::Builder<impl Write>,
) -> io::Result<Added> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_size(0);
    let open = |flags: OFlags| {
        rustix::fs::openat(
            dir,
            name,
            flags | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            h.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut h, rel, io::empty())?;
            return Ok(Added::Dir(open(OFlags::DIRECTORY)?));
        }
        FileType::RegularFile => {
            let f = File::from(open(OFlags::NONBLOCK)?);
            let len = f.metadata()?.len();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(len);
            tar.append_data(&mut h, rel, f.take(len))?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            h.set_entry_type(tar::EntryType::Symlink);
            let target: &std::ffi::OsStr =
                std::os::unix::ffi::OsStrExt::from_bytes(target.as_bytes());
            tar.append_link(&mut h, rel, target)?;
        }
        _ => return Ok(Added::Skipped),
    }
    Ok(Added::Leaf)
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
