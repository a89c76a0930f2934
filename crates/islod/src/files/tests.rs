use super::*;
use islo_runtime::IdMap;

/// A fake sandbox root beside a directory that stands for the host.
struct Fixture {
    _d: tempfile::TempDir,
    root: std::path::PathBuf,
    host: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let d = tempfile::tempdir().unwrap();
    let (root, host) = (d.path().join("root"), d.path().join("host"));
    std::fs::create_dir_all(root.join("workspace")).unwrap();
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret"), "host secret").unwrap();
    // Hostile links inside the sandbox: absolute, relative and climbing.
    std::os::unix::fs::symlink(&host, root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../host", root.join("workspace/climb")).unwrap();
    std::os::unix::fs::symlink(host.join("secret"), root.join("workspace/file-link")).unwrap();
    Fixture { _d: d, root, host }
}

#[test]
fn paths_are_checked_and_links_stay_inside() {
    let f = fixture();
    let r = SandboxRoot::open(&f.root, 1000, IdMap::IDENTITY).unwrap();
    assert!(matches!(r.read("relative"), Err(FileError::Invalid(_))));
    assert!(matches!(
        r.read("/workspace/../etc"),
        Err(FileError::Invalid(_))
    ));
    // Every link resolves inside the sandbox's root: the host file is never reached.
    let hs = f.host.join("secret");
    for p in [
        format!("{}", hs.display()),
        "/workspace/climb/secret".into(),
        "/workspace/file-link".into(),
        "/abs/secret".to_string(),
    ] {
        assert!(matches!(r.read(&p), Err(FileError::NotFound(_))), "{p}");
    }
    // Writes: through a final symlink refused; through linked directories kept inside.
    assert!(matches!(
        r.create("/workspace/file-link", 0o644),
        Err(FileError::Invalid(_))
    ));
    // The linked directory resolves inside the root, where it does not exist.
    assert!(matches!(
        r.create("/abs/new", 0o600),
        Err(FileError::NotFound(_))
    ));
    assert!(matches!(
        r.create("/workspace/climb/new", 0o600),
        Err(FileError::NotFound(_))
    ));
    assert!(!f.host.join("new").exists(), "nothing lands on the host");
    assert_eq!(std::fs::read_to_string(hs).unwrap(), "host secret");
    // A FIFO is refused, not blocked on.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.root.join("workspace/fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    assert!(matches!(
        r.read("/workspace/fifo"),
        Err(FileError::Invalid(_))
    ));
    assert!(matches!(r.read("/workspace"), Err(FileError::IsDir(_))));
}

#[test]
fn files_and_trees_round_trip_owned_by_the_user() {
    let f = fixture();
    let r = SandboxRoot::open(&f.root, 1000, IdMap::IDENTITY).unwrap();
    let mut new = r.create("/workspace/a/b/c.txt", 0o640).unwrap();
    new.write_all(b"hello").unwrap();
    new.commit().unwrap();
    let (mut file, len) = r.read("/workspace/a/b/c.txt").unwrap();
    let mut s = String::new();
    file.read_to_string(&mut s).unwrap();
    assert_eq!((s.as_str(), len), ("hello", 5));
    let meta = std::fs::metadata(f.root.join("workspace/a/b/c.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (1000, 0o640));
    assert_eq!(
        std::fs::metadata(f.root.join("workspace/a")).unwrap().uid(),
        1000
    );

    let mut gz = Vec::new();
    r.tar_dir("/workspace/a", &mut gz).unwrap();
    let (n, skipped) = r.untar_into("/workspace/copy", &gz[..]).unwrap();
    assert_eq!((n, skipped), (2, 0));
    assert_eq!(
        std::fs::read_to_string(f.root.join("workspace/copy/b/c.txt")).unwrap(),
        "hello"
    );
}

#[test]
fn hostile_archives_are_refused_or_confined() {
    let f = fixture();
    let r = SandboxRoot::open(&f.root, 1000, IdMap::IDENTITY).unwrap();
    let archive = |build: &dyn Fn(&mut tar::Builder<Vec<u8>>)| {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Raw name bytes: the builder itself refuses `..`.
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    let escape = archive(&|b| file(b, "../../../host/owned", b"x"));
    assert!(matches!(
        r.untar_into("/workspace/in", &escape[..]),
        Err(FileError::Invalid(_))
    ));
    // A link to the host, then a write through it: the write stays in the sandbox.
    let through = archive(&|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "out", &f.host).unwrap();
        file(b, "out/owned", b"x");
    });
    assert!(r.untar_into("/workspace/in", &through[..]).is_err());
    assert!(!f.host.join("owned").exists(), "nothing lands on the host");
    assert!(matches!(
        r.untar_into("/workspace/in", &b"not gzip"[..]),
        Err(FileError::Invalid(_))
    ));
}

#[test]
fn deep_trees_are_archived_without_recursion_or_refused() {
    let f = fixture();
    let mut p = f.root.join("workspace/deep");
    for _ in 0..MAX_DEPTH - 2 {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    let root = f.root.clone();
    // A small stack: a recursive walk of a thousand levels would overflow it.
    let n = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let r = SandboxRoot::open(&root, 1000, IdMap::IDENTITY).unwrap();
            r.tar_dir("/workspace/deep", std::io::sink()).unwrap()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(n, (MAX_DEPTH - 2) as u64);
    for _ in 0..4 {
        p.push("d");
    }
    std::fs::create_dir_all(&p).unwrap();
    let r = SandboxRoot::open(&f.root, 1000, IdMap::IDENTITY).unwrap();
    let e = r.tar_dir("/workspace/deep", std::io::sink()).unwrap_err();
    assert!(e.to_string().contains("deeper than"), "{e}");
}

#[test]
fn a_write_not_committed_leaves_the_old_file_and_no_trace() {
    let f = fixture();
    let r = SandboxRoot::open(&f.root, 1000, IdMap::IDENTITY).unwrap();
    r.replace("/workspace/keep.txt", 0o644, b"old and whole")
        .unwrap();
    let mut cut = r.create("/workspace/keep.txt", 0o644).unwrap();
    cut.write_all(b"half of the ne").unwrap();
    drop(cut); // the client went away
    let read = |p: &str| std::fs::read_to_string(f.root.join(p)).unwrap();
    assert_eq!(read("workspace/keep.txt"), "old and whole");
    let names: Vec<_> = std::fs::read_dir(f.root.join("workspace"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("keep"))
        .collect();
    assert_eq!(names, ["keep.txt"], "no temporary file is left");
    let mut whole = r.create("/workspace/keep.txt", 0o600).unwrap();
    whole.write_all(b"new").unwrap();
    whole.commit().unwrap();
    assert_eq!(read("workspace/keep.txt"), "new");
    // A directory in the way is refused before anything is written.
    assert!(matches!(
        r.create("/workspace", 0o644),
        Err(FileError::IsDir(_))
    ));
}

#[test]
fn in_a_user_namespace_files_get_the_mapped_owner_and_archives_show_inside_ids() {
    let f = fixture();
    let ids = IdMap {
        base: 1 << 30,
        size: IdMap::SIZE,
    };
    let r = SandboxRoot::open(&f.root, 1000, ids).unwrap();
    r.replace("/workspace/d/f.txt", 0o600, b"x").unwrap();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(f.root.join("workspace/d/f.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (ids.base + 1000, ids.base + 1000));
    // A file the host's root owns shows as nobody; the sandbox's root as 0.
    std::fs::write(f.root.join("workspace/d/host-owned"), "h").unwrap();
    std::os::unix::fs::lchown(f.root.join("workspace/d/host-owned"), Some(0), Some(0)).unwrap();
    std::fs::write(f.root.join("workspace/d/root-owned"), "r").unwrap();
    std::os::unix::fs::lchown(
        f.root.join("workspace/d/root-owned"),
        Some(ids.base),
        Some(ids.base),
    )
    .unwrap();
    let mut gz = Vec::new();
    r.tar_dir("/workspace/d", &mut gz).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
    let owners: std::collections::BTreeMap<String, u64> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.path().unwrap().display().to_string(),
                e.header().uid().unwrap(),
            )
        })
        .collect();
    assert_eq!(owners["f.txt"], 1000);
    assert_eq!(owners["root-owned"], 0);
    assert_eq!(owners["host-owned"], u64::from(islo_runtime::OVERFLOW_ID));
    assert!(
        SandboxRoot::open(&f.root, 70000, ids).is_err(),
        "an id outside the range"
    );
}
