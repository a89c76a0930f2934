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
