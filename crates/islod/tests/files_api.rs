//! The files API over the fake back end: round trips, and every refusal with its code (the
//! host-side path checks themselves are tested in `islod::files`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::io::Write;
use std::sync::Arc;

use common::*;

fn status(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, body } => (status, body.message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn files_round_trip_and_refusals_are_clear() {
    let s = server().await;
    let a = s.client("alpha");
    a.create_sandbox(&create("files")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("in.txt");
    std::fs::write(&local, "payload\n").unwrap();
    let none: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(|_| {});

    let up = a
        .upload("files", "/workspace/a/b.txt", &local, false, none.clone())
        .await
        .unwrap();
    assert_eq!((up.status.as_str(), up.written), ("success", Some(8)));
    let back = dir.path().join("back.txt");
    a.download("files", "/workspace/a/b.txt", &back, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "payload\n");

    // A directory as tar.gz, and back into another place.
    let gz = dir.path().join("a.tgz");
    a.download("files", "/workspace/a", &gz, true, &|_| {})
        .await
        .unwrap();
    a.upload("files", "/workspace/copy", &gz, true, none.clone())
        .await
        .unwrap();
    a.download("files", "/workspace/copy/b.txt", &back, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "payload\n");

    let miss = |p: &'static str| a.download("files", p, &back, false, &|_| {});
    assert_eq!(status(miss("/workspace/none").await.unwrap_err()).0, 404);
    let (code, msg) = status(miss("/workspace/a").await.unwrap_err());
    assert!(code == 400 && msg.contains("is a directory"), "{msg}");
    let (code, msg) = status(miss("/workspace/../etc/passwd").await.unwrap_err());
    assert!(code == 422 && msg.contains(".."), "{msg}");
    assert_eq!(status(miss("relative").await.unwrap_err()).0, 422);

    let junk = dir.path().join("junk.tgz");
    std::fs::File::create(&junk)
        .unwrap()
        .write_all(b"not an archive")
        .unwrap();
    let (code, msg) = status(
        a.upload("files", "/workspace/x", &junk, true, none.clone())
            .await
            .unwrap_err(),
    );
    assert!(code == 422 && msg.contains("tar.gz"), "{msg}");

    // Other tenants cannot reach it; a stopped sandbox says so (even to a client mid-upload).
    let b = s.client("beta");
    assert_eq!(
        code_of(
            b.download("files", "/workspace/a/b.txt", &back, false, &|_| {})
                .await
        ),
        ErrorCode::SandboxNotFound
    );
    a.stop_sandbox("files").await.unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![7u8; 8 << 20]).unwrap();
    let e = a
        .upload("files", "/workspace/big", &big, false, none)
        .await
        .unwrap_err();
    assert_eq!(status(e).0, 409);
}

fn code_of(r: Result<u64, ClientError>) -> ErrorCode {
    code(r.unwrap_err())
}

#[tokio::test]
async fn directories_are_listed_and_in_memory_files_travel() {
    let s = server().await;
    let a = s.client("alpha");
    a.create_sandbox(&create("listing")).await.unwrap();
    a.write_file("listing", "/workspace/d/one.txt", b"1\n".to_vec())
        .await
        .unwrap(); // its directory is made
    a.write_file("listing", "/workspace/one.txt", b"one\n".to_vec())
        .await
        .unwrap();
    a.write_file("listing", "/workspace/two.bin", vec![0u8; 300])
        .await
        .unwrap();

    let got = a.list_files("listing", "/workspace").await.unwrap();
    let names: Vec<_> = got.entries.iter().map(|e| e.name.as_str()).collect();
    assert!(
        names.contains(&"one.txt") && names.contains(&"two.bin"),
        "{names:?}"
    );
    let two = got.entries.iter().find(|e| e.name == "two.bin").unwrap();
    assert_eq!(
        (two.kind, two.size, two.mode),
        (islo_api::FileKind::File, 300, 0o644)
    );
    let root = a.list_files("listing", "/").await.unwrap();
    assert!(
        root.entries
            .iter()
            .any(|e| e.name == "workspace" && e.kind == islo_api::FileKind::Directory)
    );

    // Read back whole, and cut at a limit (with the whole size told).
    let one = a
        .read_file("listing", "/workspace/one.txt", 1 << 20)
        .await
        .unwrap();
    assert_eq!((one.data.as_slice(), one.size), (&b"one\n"[..], 4));
    let part = a
        .read_file("listing", "/workspace/two.bin", 100)
        .await
        .unwrap();
    assert_eq!((part.data.len(), part.size), (100, 300));

    // Refusals: missing, not a directory, outside the sandbox, another tenant.
    let err = |r: Result<islo_api::FileListResponse, ClientError>| status(r.unwrap_err());
    assert_eq!(err(a.list_files("listing", "/nope").await).0, 404);
    let (code, msg) = err(a.list_files("listing", "/workspace/../..").await);
    assert!(code == 422 && msg.contains(".."), "{msg}");
    assert_eq!(err(a.list_files("listing", "relative").await).0, 422);
    assert!(a.list_files("listing", "/workspace/one.txt").await.is_err());
    let b = s.client("beta");
    assert_eq!(err(b.list_files("listing", "/workspace").await).0, 404);
}
