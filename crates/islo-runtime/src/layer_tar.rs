//! A directory in overlayfs form (an upper dir, or an unpacked layer) written as an OCI layer
//! tar: overlayfs whiteouts (0/0 character devices) become `.wh.NAME` entries, opaque
//! directories (`trusted.overlay.opaque`) get `.wh..wh..opq`, hard links are `Link` entries,
//! `user.*` extended attributes are PAX `SCHILY.xattr.` records. The output is deterministic
//! (sorted names, no access times, no user names), so the same tree always has the same digest.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a layer holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayerStats {
    pub entries: u64,
    pub whiteouts: u64,
    /// Regular file bytes.
    pub bytes: u64,
    /// Sockets and devices other than whiteouts, which a layer cannot carry.
    pub skipped: u64,
}

/// How deep a tree may be: the walk keeps one open level per directory, and the sandbox
/// chooses the depth.
pub const MAX_DEPTH: usize = 1024;

/// Write the tree at `root` as an uncompressed OCI layer tar into `out`.
///
/// Names that start with `.wh.` are left out (counted as skipped): in a layer they would be
/// whiteouts, not files.
pub fn write_layer(root: &Path, out: &mut dyn Write) -> io::Result<LayerStats> {
    write_layer_as(root, crate::IdMap::IDENTITY, out)
}

/// [`write_layer`] of a tree whose owners are host ids mapped by `ids`: the tar carries the
/// ids as seen inside.
pub fn write_layer_as(
    root: &Path,
    ids: crate::IdMap,
    out: &mut dyn Write,
) -> io::Result<LayerStats> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut w = Walker {
        root,
        ids,
        links: HashMap::new(),
        stats: LayerStats::default(),
    };
    w.walk(&mut b)?;
    b.into_inner()?.flush()?;
    Ok(w.stats)
}

struct Walker<'a> {
    root: &'a Path,
    ids: crate::IdMap,
    /// First path of each multiply-linked inode.
    links: HashMap<(u64, u64), String>,
    stats: LayerStats,
}

/// A directory being written: its path and the names not written yet.
struct Level {
    rel: PathBuf,
    names: std::vec::IntoIter<OsString>,
}

type Out<'b, 'w> = &'b mut tar::Builder<&'w mut dyn Write>;

impl Walker<'_> {
    /// Depth first, in name order, with an explicit stack: the tree's depth is the sandbox's
    /// choice, this thread's stack is not.
    fn walk(&mut self, b: Out<'_, '_>) -> io::Result<()> {
        let mut stack = vec![self.open(b, PathBuf::new())?];
        while let Some(top) = stack.last_mut() {
            let Some(name) = top.names.next() else {
                stack.pop();
                continue;
            };
            let rel = top.rel.join(name);
            if self.entry(b, &rel)? {
                if stack.len() >= MAX_DEPTH {
                    return Err(io::Error::other(format!(
                        "the tree is deeper than {MAX_DEPTH} directories (at {})",
                        rel.display()
                    )));
                }
                stack.push(self.open(b, rel)?);
            }
        }
        Ok(())
    }

    /// The sorted names of directory `rel`, after its opaque marker if it has one.
    fn open(&mut self, b: Out<'_, '_>, rel: PathBuf) -> io::Result<Level> {
        let abs = self.root.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&abs)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        if !rel.as_os_str().is_empty() && is_opaque(&abs) {
            self.marker(b, &rel.join(".wh..wh..opq"))?;
        }
        Ok(Level {
            rel,
            names: names.into_iter(),
        })
    }

    /// Write the entry `rel`; `true` when it is a directory whose children come next.
    fn entry(&mut self, b: Out<'_, '_>, rel: &Path) -> io::Result<bool> {
        let abs = self.root.join(rel);
        let m = std::fs::symlink_metadata(&abs)?;
        let ft = m.file_type();
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if ft.is_char_device() && m.rdev() == 0 {
            self.marker(b, &rel.with_file_name(format!(".wh.{name}")))?;
            return Ok(false);
        }
        if name.starts_with(".wh.") {
            self.stats.skipped += 1;
            return Ok(false);
        }
        let mut h = header(&m, &self.ids);
        let xattrs = user_xattrs(&abs);
        if !xattrs.is_empty() {
            let recs: Vec<(String, Vec<u8>)> = xattrs
                .into_iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
                .collect();
            b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        self.stats.entries += 1;
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, rel, io::empty())?;
            return Ok(true);
        }
        if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, rel, std::fs::read_link(&abs)?)?;
        } else if ft.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
            b.append_data(&mut h, rel, io::empty())?;
        } else if ft.is_file() {
            self.file(b, rel, &abs, &m, h)?;
        } else {
            self.stats.entries -= 1;
            self.stats.skipped += 1;
        }
        Ok(false)
    }

    fn file(
        &mut self,
        b: Out<'_, '_>,
        rel: &Path,
        abs: &Path,
        m: &std::fs::Metadata,
        mut h: tar::Header,
    ) -> io::Result<()> {
        if m.nlink() > 1 {
            let key = (m.dev(), m.ino());
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                return b.append_link(&mut h, rel, first);
            }
            self.links.insert(key, rel.to_string_lossy().into_owned());
        }
        h.set_entry_type(tar::EntryType::Regular);
        self.stats.bytes += m.len();
        // The tree is frozen or stopped while it is walked; not following a final symlink
        // anyway keeps a swapped-in link from reaching a host file.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(abs)?;
        b.append_data(&mut h, rel, file)
    }

    fn marker(&mut self, b: Out<'_, '_>, rel: &Path) -> io::Result<()> {
        self.stats.whiteouts += 1;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(0);
        b.append_data(&mut h, rel, io::empty())
    }
}

fn header(m: &std::fs::Metadata, ids: &crate::IdMap) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(u64::from(ids.to_inside(m.uid())));
    h.set_gid(u64::from(ids.to_inside(m.gid())));
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(if m.file_type().is_file() { m.len() } else { 0 });
    h
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf), Ok(n) if buf[..n] == *b"y")
}

/// The `user.*` extended attributes of `path` (not followed), sorted.
fn user_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = names[..n]
        .split(|b| *b == 0)
        .filter_map(|k| std::str::from_utf8(k).ok())
        .filter(|k| k.starts_with("user."))
        .filter_map(|k| {
            let mut v = vec![0u8; 65536];
            let len = rustix::fs::lgetxattr(path, k, &mut v).ok()?;
            v.truncate(len);
            Some((k.to_string(), v))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn overlay_forms_become_oci_forms_deterministically() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc/sub")).unwrap();
        std::fs::write(r.join("etc/a"), "alpha").unwrap();
        std::fs::hard_link(r.join("etc/a"), r.join("etc/b")).unwrap();
        std::os::unix::fs::symlink("/etc/a", r.join("link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            r.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        rustix::fs::lsetxattr(
            r.join("etc/sub"),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let mut out = Vec::new();
        let stats = write_layer(r, &mut out).unwrap();
        assert_eq!((stats.whiteouts, stats.bytes), (2, 5));
        assert_eq!(
            names(&out),
            [
                ("etc".to_string(), tar::EntryType::Directory),
                ("etc/a".into(), tar::EntryType::Regular),
                ("etc/b".into(), tar::EntryType::Link),
                ("etc/sub".into(), tar::EntryType::Directory),
                ("etc/sub/.wh..wh..opq".into(), tar::EntryType::Regular),
                (".wh.gone".into(), tar::EntryType::Regular),
                ("link".into(), tar::EntryType::Symlink),
            ]
        );
        let mut again = Vec::new();
        write_layer(r, &mut again).unwrap();
        assert_eq!(out, again, "the same tree gives the same bytes");
    }
    fn deep(root: &Path, levels: usize) {
        let mut p = root.to_path_buf();
        for _ in 0..levels {
            p.push("d");
        }
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("leaf"), "x").unwrap();
    }

    #[test]
    fn deep_trees_do_not_grow_the_stack() {
        let d = tempfile::tempdir().unwrap();
        deep(d.path(), MAX_DEPTH - 1);
        let root = d.path().to_path_buf();
        // A small stack: a recursive walk of a thousand levels would overflow it.
        let stats = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || write_layer(&root, &mut io::sink()).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!((stats.entries, stats.bytes), (MAX_DEPTH as u64, 1));
        let deeper = tempfile::tempdir().unwrap();
        deep(deeper.path(), MAX_DEPTH + 5);
        let e = write_layer(deeper.path(), &mut io::sink()).unwrap_err();
        assert!(e.to_string().contains("deeper than"), "{e}");
    }

    #[test]
    fn files_named_like_whiteouts_are_left_out() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".wh..."), "").unwrap();
        std::fs::write(d.path().join(".wh.kept"), "").unwrap();
        std::fs::write(d.path().join("kept"), "k").unwrap();
        let mut out = Vec::new();
        let stats = write_layer(d.path(), &mut out).unwrap();
        assert_eq!(stats.skipped, 2);
        assert_eq!(names(&out), [("kept".to_string(), tar::EntryType::Regular)]);
    }
}
