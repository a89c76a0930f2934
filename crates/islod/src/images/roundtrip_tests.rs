//! A tree in overlayfs form written as a layer (`islo_runtime::layer_tar`) and unpacked again
//! (`extract`) comes back the same: the path snapshots and their export take.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{CWD, FileType, Mode, XattrFlags};

/// Everything `ls -lan` and the xattrs say about a tree (directory times aside).
fn describe(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mut x = [0u8; 64];
            let xattr = rustix::fs::lgetxattr(&p, "user.note", &mut x)
                .map(|n| String::from_utf8_lossy(&x[..n]).into_owned())
                .unwrap_or_default();
            let mut o = [0u8; 4];
            let opaque = rustix::fs::lgetxattr(&p, "trusted.overlay.opaque", &mut o).is_ok();
            let content = if m.file_type().is_file() {
                std::fs::read_to_string(&p).unwrap()
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else {
                String::new()
            };
            // Directories' times change as entries are made; a whiteout (a 0/0 character
            // device) is a mark, made at unpack time, and carries no time of its own.
            let whiteout = m.file_type().is_char_device() && m.rdev() == 0;
            let mtime = if m.is_dir() || whiteout { 0 } else { m.mtime() };
            out.push(format!(
                "{rel} mode={:o} {}:{} nlink={} rdev={} mtime={mtime} xattr={xattr} opaque={opaque} {content:?}",
                m.mode(), m.uid(), m.gid(), m.nlink(), m.rdev()
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn every_file_kind_survives_the_round_trip() {
    let src = tempfile::tempdir().unwrap();
    let r = src.path();
    std::fs::create_dir_all(r.join("workspace/deep/er")).unwrap();
    std::fs::write(r.join("workspace/file"), "data").unwrap();
    std::fs::set_permissions(
        r.join("workspace/file"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::chown(r.join("workspace/file"), Some(1000), Some(1000)).unwrap();
    std::fs::hard_link(r.join("workspace/file"), r.join("workspace/deep/hard")).unwrap();
    std::os::unix::fs::symlink("../file", r.join("workspace/deep/sym")).unwrap();
    std::os::unix::fs::lchown(r.join("workspace/deep/sym"), Some(1000), Some(1000)).unwrap();
    rustix::fs::mknodat(
        CWD,
        r.join("workspace/fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    rustix::fs::lsetxattr(
        r.join("workspace/file"),
        "user.note",
        b"kept",
        XattrFlags::empty(),
    )
    .unwrap();
    // An image file deleted, and a directory replaced (overlayfs forms).
    rustix::fs::mknodat(
        CWD,
        r.join("workspace/gone"),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
    rustix::fs::lsetxattr(
        r.join("workspace/deep/er"),
        "trusted.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    )
    .unwrap();
    std::fs::write(r.join("workspace/deep/er/new"), "").unwrap();
    std::fs::set_permissions(
        r.join("workspace/deep"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();

    // Old times, so an entry whose time is not restored cannot match by luck.
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_000_000,
            tv_nsec: 0,
        },
    };
    for p in [
        "workspace/file",
        "workspace/fifo",
        "workspace/deep/sym",
        "workspace/deep/er/new",
    ] {
        rustix::fs::utimensat(CWD, r.join(p), &t, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }
    let mut layer = Vec::new();
    islo_runtime::layer_tar::write_layer(r, &mut layer).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let stats = super::extract::unpack(&layer[..], dst.path(), u64::MAX).unwrap();
    assert_eq!(stats.skipped, 0);
    assert_eq!(describe(dst.path()), describe(r));
}
