//! Finding and reading files for islod (agent transcripts for the audit log).
//!
//! Code in the sandbox controls every byte of its filesystem, so neither function follows a
//! symlink it meets (a link to `/proc/1/…` or a huge file elsewhere is simply not a match)
//! and reads open nothing but regular files (a FIFO would block the reader for ever).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::proto::{FileEntry, MAX_PAYLOAD};

/// Regular files below `root` (at most `max_depth` levels down) whose names end in `suffix`,
/// sorted by path, at most `max_files` of them. A missing `root` has none.
pub fn scan(
    root: &Path,
    suffix: &str,
    max_depth: u32,
    max_files: u32,
) -> io::Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.is_dir() => walk(root, "", suffix, max_depth, max_files as usize, &mut out)?,
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(
    dir: &Path,
    rel: &str,
    suffix: &str,
    depth: u32,
    max: usize,
    out: &mut Vec<FileEntry>,
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= max {
            return Ok(());
        }
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        // `DirEntry::metadata` does not follow symlinks.
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() && depth > 0 {
            walk(&e.path(), &path, suffix, depth - 1, max, out)?;
        } else if meta.is_file() && name.ends_with(suffix) {
            out.push(FileEntry {
                path,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

/// Up to `len` bytes (capped at the frame limit) of the regular file at `path` from `offset`.
pub fn read(path: &Path, offset: u64, len: u32) -> io::Result<Vec<u8>> {
    use rustix::fs::{FileType, Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let file = File::from(fd);
    let want = (len as usize).min(MAX_PAYLOAD);
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_matching_files_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("p/s/subagents")).unwrap();
        std::fs::write(r.join("p/a.jsonl"), "12").unwrap();
        std::fs::write(r.join("p/s/subagents/agent-1.jsonl"), "1").unwrap();
        std::fs::write(r.join("p/notes.txt"), "x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.jsonl"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("p/linkdir")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.jsonl"), r.join("p/l.jsonl"))
            .unwrap();

        let all = scan(r, ".jsonl", 5, 100).unwrap();
        let paths: Vec<_> = all.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["p/a.jsonl", "p/s/subagents/agent-1.jsonl"]);
        assert_eq!(all[0].size, 2);
        assert_eq!(
            scan(r, ".jsonl", 1, 100).unwrap().len(),
            1,
            "depth is bounded"
        );
        assert_eq!(
            scan(r, ".jsonl", 5, 1).unwrap().len(),
            1,
            "count is bounded"
        );
        assert!(
            scan(&r.join("missing"), ".jsonl", 5, 100)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn read_takes_ranges_of_regular_files_only() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("t.jsonl");
        std::fs::write(&f, "hello world").unwrap();
        assert_eq!(read(&f, 6, 100).unwrap(), b"world");
        assert_eq!(read(&f, 0, 5).unwrap(), b"hello");
        assert!(read(&f, 50, 5).unwrap().is_empty());

        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read(&link, 0, 5).is_err(), "a symlink must not be followed");
        assert!(read(d.path(), 0, 5).is_err(), "a directory is refused");
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(
            read(&fifo, 0, 5).is_err(),
            "a FIFO is refused, not blocked on"
        );
    }
}
