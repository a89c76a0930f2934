//! Unpacking one image layer into its own directory, safely.
//!
//! Layers are hostile input. No entry may land outside the layer directory: `..` components
//! are refused, and no entry is written through a symlink or a non-directory (each parent is
//! checked with `lstat`; this process is the only writer). Absolute symlinks are kept as they
//! are: they resolve inside the sandbox, never on the host. Device nodes are not created
//! (counted in [`UnpackStats::skipped`]); FIFOs are; setuid/setgid bits are cleared; only
//! `user.*` extended attributes are restored. OCI whiteouts become
//! overlayfs whiteouts (0/0 character devices) and opaque directories (`trusted.overlay.opaque`).

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use crate::sparse::CopyError;

/// Why a layer was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {0:?} escapes the layer root")]
    Escape(String),
    #[error("layer entry {0:?} would be written through a symlink or non-directory")]
    ThroughLink(String),
    #[error("layer entry {entry:?} hard-links to missing or unsafe {target:?}")]
    BadHardLink { entry: String, target: String },
    #[error("layer entry {0:?} is a whiteout of nothing a layer can hide")]
    BadWhiteout(String),
    #[error("layer holds more content than islod accepts from it (the limit was reached at {0})")]
    TooLarge(String),
    #[error("reading layer: {0}")]
    Read(io::Error),
    #[error("writing {path}: {source}")]
    Write { path: String, source: io::Error },
}

/// What an unpack did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub whiteouts: u64,
    pub skipped: u64,
    pub setid_cleared: u64,
}

const OPAQUE: &str = ".wh..wh..opq";
const WH_PREFIX: &str = ".wh.";

/// Clean relative path of an entry, or an error for `..` and other escapes.
fn clean(raw: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::Escape(raw.display().to_string()));
            }
        }
    }
    Ok(out)
}

fn werr(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Make sure every parent of `rel` under `root` is a real directory, creating missing ones.
fn ensure_parents(root: &Path, rel: &Path, create: bool) -> Result<(), UnpackError> {
    let mut cur = root.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for c in parents {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(UnpackError::ThroughLink(rel.display().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&cur).map_err(werr(&cur))?;
            }
            Err(e) => return Err(werr(&cur)(e)),
        }
    }
    Ok(())
}

/// Remove whatever is at `path` unless it is a directory that `keep_dir` allows to stay.
fn clear(path: &Path, keep_dir: bool) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => {
            if !keep_dir {
                fs::remove_dir_all(path).map_err(werr(path))?;
            }
        }
        Ok(_) => fs::remove_file(path).map_err(werr(path))?,
        Err(_) => {}
    }
    Ok(())
}

/// Unpack the (uncompressed) tar stream `src` into `root`, writing at most `budget` bytes of
/// file content (zero blocks stay holes and cost nothing).
pub fn unpack(src: impl Read, root: &Path, budget: u64) -> Result<UnpackStats, UnpackError> {
    let mut archive = tar::Archive::new(src);
    let mut left = budget;
    let mut stats = UnpackStats::default();
    let mut dir_times = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let raw = entry.path().map_err(UnpackError::Read)?.into_owned();
        let rel = clean(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        stats.entries += 1;
        ensure_parents(root, &rel, true)?;
        if whiteout(root, &rel)? {
            stats.whiteouts += 1;
            continue;
        }
        let xattrs = user_xattrs(&mut entry)?;
        let h = entry.header();
        let meta = Meta {
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mode: h.mode().unwrap_or(0o644),
            mtime: h.mtime().unwrap_or(0) as i64,
        };
        let kind = h.entry_type();
        if meta.mode & 0o6000 != 0 && kind.is_file() {
            stats.setid_cleared += 1;
        }
        let path = root.join(&rel);
        match kind {
            tar::EntryType::Directory => {
                make_dir(&path, &meta)?;
                dir_times.push((path.clone(), meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                left -= make_file(&mut entry, &path, &meta, left)?;
            }
            tar::EntryType::Symlink => {
                let target = link_name(&entry)?;
                clear(&path, false)?;
                std::os::unix::fs::symlink(&target, &path).map_err(werr(&path))?;
                std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))
                    .map_err(werr(&path))?;
                set_mtime(&path, meta.mtime);
            }
            tar::EntryType::Link => make_hard_link(root, &rel, &link_name(&entry)?)?,
            tar::EntryType::Fifo => {
                clear(&path, false)?;
                let mode = Mode::from_raw_mode(meta.mode & 0o777);
                rustix::fs::mknodat(CWD, &path, FileType::Fifo, mode, 0)
                    .map_err(|e| werr(&path)(e.into()))?;
                std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))
                    .map_err(werr(&path))?;
                set_mtime(&path, meta.mtime);
            }
            _ => stats.skipped += 1, // devices: never created from a layer
        }
        for (k, v) in &xattrs {
            // Symlinks cannot carry user attributes; nothing else is expected to refuse.
            let _ = rustix::fs::lsetxattr(&path, k.as_str(), v, XattrFlags::empty());
        }
    }
    // Directory times last: adding children changed them.
    for (dir, mtime) in dir_times.into_iter().rev() {
        set_mtime(&dir, mtime);
    }
    Ok(stats)
}

/// Owner, permissions (setuid/setgid cleared) and time of an entry.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
}

impl Meta {
    fn perms(&self) -> fs::Permissions {
        fs::Permissions::from_mode(self.mode & 0o1777)
    }
}

/// The `user.*` extended attributes an entry carries (PAX `SCHILY.xattr.`); other
/// namespaces (`security.`, `trusted.`) are never taken from a layer.
fn user_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let Some(exts) = entry.pax_extensions().map_err(UnpackError::Read)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for ext in exts {
        let ext = ext.map_err(UnpackError::Read)?;
        if let Ok(key) = ext.key()
            && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            && name.starts_with("user.")
        {
            out.push((name.to_string(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<PathBuf, UnpackError> {
    Ok(entry
        .link_name()
        .map_err(UnpackError::Read)?
        .unwrap_or_default()
        .into_owned())
}

/// Handle an OCI whiteout entry; `false` when `rel` is not one.
fn whiteout(root: &Path, rel: &Path) -> Result<bool, UnpackError> {
    let path = root.join(rel);
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == OPAQUE {
        let dir = path.parent().unwrap_or(root);
        rustix::fs::lsetxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
            .map_err(|e| werr(dir)(e.into()))?;
        return Ok(true);
    }
    let Some(hidden) = name.strip_prefix(WH_PREFIX) else {
        return Ok(false);
    };
    // `.wh.`, `.wh..` and `.wh...` would name the directory itself or its parent.
    if matches!(hidden, "" | "." | "..") || hidden.starts_with(WH_PREFIX) {
        return Err(UnpackError::BadWhiteout(rel.display().to_string()));
    }
    let target = path.with_file_name(hidden);
    clear(&target, false)?;
    rustix::fs::mknodat(CWD, &target, FileType::CharacterDevice, Mode::empty(), 0)
        .map_err(|e| werr(&target)(e.into()))?;
    Ok(true)
}

fn make_dir(path: &Path, meta: &Meta) -> Result<(), UnpackError> {
    clear(path, true)?;
    if !path.exists() {
        fs::create_dir(path).map_err(werr(path))?;
    }
    fs::set_permissions(path, meta.perms()).map_err(werr(path))?;
    std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid)).map_err(werr(path))
}

/// A regular file with its holes; returns the bytes of content written.
fn make_file(
    src: &mut impl Read,
    path: &Path,
    meta: &Meta,
    budget: u64,
) -> Result<u64, UnpackError> {
    clear(path, false)?;
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
        .map_err(werr(path))?;
    let written = match crate::sparse::copy(src, f.try_clone().map_err(werr(path))?, budget) {
        Ok(n) => n,
        Err(CopyError::OverBudget(_)) => {
            return Err(UnpackError::TooLarge(path.display().to_string()));
        }
        Err(CopyError::Io(e)) => return Err(werr(path)(e)),
    };
    std::os::unix::fs::fchown(&f, Some(meta.uid), Some(meta.gid)).map_err(werr(path))?;
    f.set_permissions(meta.perms()).map_err(werr(path))?;
    set_mtime(path, meta.mtime);
    Ok(written)
}

/// A hard link to a regular file of this layer, reached without symlinks.
fn make_hard_link(root: &Path, rel: &Path, target_raw: &Path) -> Result<(), UnpackError> {
    let target = clean(target_raw)?;
    let bad = || UnpackError::BadHardLink {
        entry: rel.display().to_string(),
        target: target_raw.display().to_string(),
    };
    ensure_parents(root, &target, false).map_err(|_| bad())?;
    let src = root.join(&target);
    match fs::symlink_metadata(&src) {
        Ok(m) if m.file_type().is_file() => {}
        _ => return Err(bad()),
    }
    let path = root.join(rel);
    clear(&path, false)?;
    fs::hard_link(&src, &path).map_err(werr(&path))
}

fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let _ = rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the raw name like a hostile tool would.
        let name = h.as_old_mut().name.as_mut();
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, path, target).unwrap();
    }

    #[test]
    fn refuses_parent_escape() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("layer");
        fs::create_dir(&dest).unwrap();
        let tar = layer(|b| file(b, "../escaped", b"x", 0o644));
        assert!(matches!(
            unpack(&tar[..], &dest, u64::MAX),
            Err(UnpackError::Escape(_))
        ));
        assert!(!root.path().join("escaped").exists());
    }

    #[test]
    fn refuses_whiteouts_of_the_directory_or_its_parent() {
        for name in [".wh...", "sub/.wh...", ".wh..", ".wh."] {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("layer");
            fs::create_dir(&dest).unwrap();
            let neighbour = root.path().join("other-operation");
            fs::write(&neighbour, "kept").unwrap();
            let tar = layer(|b| {
                file(b, "sub/f", b"x", 0o644);
                file(b, name, b"", 0o644);
            });
            assert!(
                matches!(
                    unpack(&tar[..], &dest, u64::MAX),
                    Err(UnpackError::BadWhiteout(_))
                ),
                "{name}"
            );
            assert_eq!(fs::read_to_string(&neighbour).unwrap(), "kept", "{name}");
            assert!(dest.join("sub/f").exists(), "{name}");
        }
    }

    #[test]
    fn refuses_writing_through_symlink() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let dest = root.path().join("layer");
        fs::create_dir(&dest).unwrap();
        let tar = layer(|b| {
            link(b, tar::EntryType::Symlink, "etc", outside.to_str().unwrap());
            file(b, "etc/passwd", b"owned", 0o644);
        });
        assert!(matches!(
            unpack(&tar[..], &dest, u64::MAX),
            Err(UnpackError::ThroughLink(_))
        ));
        assert!(!outside.join("passwd").exists());
        // Absolute symlinks themselves are fine (they resolve inside the sandbox).
        assert!(
            fs::symlink_metadata(dest.join("etc"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn refuses_hardlink_out() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("layer");
        fs::create_dir(&dest).unwrap();
        let tar = layer(|b| link(b, tar::EntryType::Link, "shadow", "../../etc/shadow"));
        assert!(unpack(&tar[..], &dest, u64::MAX).is_err());
        let tar = layer(|b| {
            link(b, tar::EntryType::Symlink, "s", "/etc/hostname");
            link(b, tar::EntryType::Link, "h", "s");
        });
        assert!(matches!(
            unpack(&tar[..], &dest, u64::MAX),
            Err(UnpackError::BadHardLink { .. })
        ));
    }

    #[test]
    fn whiteouts_opaque_setuid_and_hardlinks() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path();
        let tar = layer(|b| {
            file(b, "usr/bin/su", b"#!", 0o4755);
            file(b, "etc/.wh.motd", b"", 0o644);
            file(b, "var/cache/.wh..wh..opq", b"", 0o644);
            file(b, "a/data", b"payload", 0o640);
            link(b, tar::EntryType::Link, "a/again", "a/data");
        });
        let stats = unpack(&tar[..], dest, u64::MAX).unwrap();
        assert_eq!((stats.whiteouts, stats.setid_cleared), (2, 1));
        let su = fs::metadata(dest.join("usr/bin/su")).unwrap();
        assert_eq!(su.permissions().mode() & 0o7777, 0o755);
        let wh = fs::symlink_metadata(dest.join("etc/motd")).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        let opq = rustix::fs::lgetxattr(
            dest.join("var/cache"),
            "trusted.overlay.opaque",
            &mut [0u8; 4],
        )
        .unwrap();
        assert_eq!(opq, 1);
        assert_eq!(
            fs::metadata(dest.join("a/again")).unwrap().ino(),
            fs::metadata(dest.join("a/data")).unwrap().ino()
        );
    }
}
