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

mod inplace;

pub use inplace::Entry;

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

/// A file being written, not yet at its name (see [`SandboxRoot::create`]). Dropped without
/// [`NewFile::commit`], it vanishes.
pub struct NewFile {
    file: File,
    dir: OwnedFd,
    /// Its temporary name, when the file system could not make it nameless.
    hidden: Option<String>,
    name: String,
    path: String,
    done: bool,
}

impl NewFile {
    /// A second handle on the file (for async writers); [`NewFile::commit`] still places it.
    pub fn try_clone(&self) -> Result<File, FileError> {
        self.file.try_clone().map_err(io_at(&self.path))
    }

    /// Put the written file at its name, replacing what was there in one step.
    pub fn commit(mut self) -> Result<(), FileError> {
        let path = self.path.clone();
        let err = |e: rustix::io::Errno| io_at(&path)(e.into());
        let staged = match &self.hidden {
            Some(tmp) => tmp.clone(),
            None => {
                // Give the nameless file a hidden name for the instant before the rename.
                let tmp = format!(".{}.islo-{}", self.name, uuid::Uuid::now_v7().simple());
                use std::os::fd::AsRawFd;
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    format!("/proc/self/fd/{}", self.file.as_raw_fd()),
                    &self.dir,
                    tmp.as_str(),
                    AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(err)?;
                self.hidden = Some(tmp.clone());
                tmp
            }
        };
        rustix::fs::renameat(&self.dir, staged.as_str(), &self.dir, self.name.as_str()).map_err(
            |e| match e {
                rustix::io::Errno::ISDIR => FileError::IsDir(path.clone()),
                e => err(e),
            },
        )?;
        self.done = true;
        Ok(())
    }
}

impl Write for NewFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if let (false, Some(tmp)) = (self.done, &self.hidden) {
            let _ = rustix::fs::unlinkat(&self.dir, tmp.as_str(), AtFlags::empty());
        }
    }
}

/// A sandbox's root, the owner of what is created in it and how its ids map to the host's.
pub struct SandboxRoot {
    root: OwnedFd,
    /// Host ids of the owner of what is created.
    uid: u32,
    gid: u32,
    ids: islo_runtime::IdMap,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

impl SandboxRoot {
    /// The root at `root` of a sandbox whose ids map to the host's through `ids`; what is
    /// created belongs to its user and group `user` (as seen inside).
    pub fn open(root: &Path, user: u32, ids: islo_runtime::IdMap) -> io::Result<Self> {
        let root = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let host = ids.to_host(user).ok_or_else(|| {
            io::Error::other(format!("id {user} is outside the sandbox's id range"))
        })?;
        Ok(Self {
            root,
            uid: host,
            gid: host,
            ids,
        })
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

    /// Start writing the regular file `path` with `mode` (parents created): the bytes go to
    /// a file of no name (or a hidden one, where the file system cannot do that) in the same
    /// directory, and only [`NewFile::commit`] puts it in place of what `path` held, so an
    /// interrupted write (a client gone, islod killed) leaves the old content whole. A final
    /// symlink is refused, never followed; nor would the rename follow it.
    pub fn create(&self, path: &str, mode: u32) -> Result<NewFile, FileError> {
        let mut parts = components(path)?;
        let name = parts
            .pop()
            .ok_or_else(|| FileError::Invalid("cannot write to /".into()))?;
        let dir = self.mkdirs(&parts, path)?;
        match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    return Err(FileError::Invalid(format!(
                        "{path} is a symlink; refusing to write through it"
                    )));
                }
                FileType::Directory => return Err(FileError::IsDir(path.to_string())),
                _ => {}
            },
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io_at(path)(e.into())),
        }
        let mode = Mode::from_raw_mode(mode & 0o777);
        let flags = OFlags::WRONLY | OFlags::CLOEXEC;
        let (fd, hidden) = match rustix::fs::openat(&dir, ".", flags | OFlags::TMPFILE, mode) {
            Ok(fd) => (fd, None),
            Err(_) => {
                let tmp = format!(".{name}.islo-{}", uuid::Uuid::now_v7().simple());
                let fd = rustix::fs::openat(
                    &dir,
                    tmp.as_str(),
                    flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                    mode,
                )
                .map_err(|e| io_at(path)(e.into()))?;
                (fd, Some(tmp))
            }
        };
        let file = NewFile {
            file: File::from(fd),
            dir,
            hidden,
            name,
            path: path.to_string(),
            done: false,
        };
        let own = |e: rustix::io::Errno| io_at(path)(e.into());
        rustix::fs::fchown(
            &file.file,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
        )
        .map_err(own)?;
        rustix::fs::fchmod(&file.file, mode).map_err(own)?;
        Ok(file)
    }

    /// Put `contents` at `path` (parents created) in one step: a reader sees the old file or
    /// the new one, and a symlink there is replaced, never followed.
    pub fn replace(&self, path: &str, mode: u32, contents: &[u8]) -> Result<(), FileError> {
        let mut f = self.create(path, mode)?;
        f.write_all(contents).map_err(io_at(path))?;
        f.commit()
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
        walk(dir, &self.ids, &mut tar, &mut count).map_err(io_at(path))?;
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
                    f.commit()?;
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
/// Owners are written as the sandbox sees them (`ids`).
fn walk(
    dir: OwnedFd,
    ids: &islo_runtime::IdMap,
    tar: &mut tar::Builder<impl Write>,
    count: &mut u64,
) -> io::Result<()> {
    let mut stack = vec![Level::new(dir, PathBuf::new())?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.next() else {
            stack.pop();
            continue;
        };
        let rel = top.prefix.join(&name);
        match add_entry(&top.dir, &name, &rel, ids, tar)? {
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
    ids: &islo_runtime::IdMap,
    tar: &mut tar::Builder<impl Write>,
) -> io::Result<Added> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_uid(u64::from(ids.to_inside(st.st_uid)));
    h.set_gid(u64::from(ids.to_inside(st.st_gid)));
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
mod tests;
