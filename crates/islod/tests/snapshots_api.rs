//! Snapshots over the API with the fake back end: shapes, `Prefer: respond-async`, paging,
//! tenancy, and the error codes of names taken, snapshots in use and missing things.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::{CreateSnapshotRequest, SnapshotStatus};

fn save(sandbox: &str, name: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        memory: None,
        sandbox_name: Some(sandbox.into()),
        sandbox_id: None,
        name: Some(name.into()),
    }
}

#[tokio::test]
async fn snapshots_save_restore_page_and_refuse_clearly() {
    let s = server().await;
    let (a, b) = (s.client("alpha"), s.client("beta"));
    let src = a.create_sandbox(&create("src")).await.unwrap();
    let root = s.dir.path().join(format!("fake/{}.root", src.id));
    std::fs::create_dir_all(root.join("workspace")).unwrap();
    std::fs::write(root.join("workspace/kept"), "payload").unwrap();

    let snap = a.create_snapshot(&save("src", "one"), false).await.unwrap();
    assert_eq!(
        (snap.status.as_str(), snap.sandbox_id.as_deref()),
        ("ready", Some(src.id.as_str()))
    );
    assert!(snap.size_bytes.unwrap() > 7 && snap.checksum_sha256.unwrap().starts_with("sha256:"));

    // Async: answers `saving` at once, then becomes ready.
    let pending = a.create_snapshot(&save("src", "two"), true).await.unwrap();
    assert_eq!(pending.status, SnapshotStatus::Saving);
    let mut status = pending.status;
    for _ in 0..100 {
        status = a.get_snapshot("two").await.unwrap().status;
        if status != SnapshotStatus::Saving {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, SnapshotStatus::Ready);
    let page = a.list_snapshots(Some(1), Some(1)).await.unwrap();
    assert_eq!(
        (page.total, page.items.len(), page.limit, page.offset),
        (2, 1, 1, 1)
    );

    // A sandbox from it sees the files; the snapshot is then in use.
    let req = islo_api::CreateSandboxRequest {
        name: Some("dst".into()),
        snapshot_name: Some("one".into()),
        ..Default::default()
    };
    let dst = a.create_sandbox(&req).await.unwrap();
    let got = std::fs::read_to_string(
        s.dir
            .path()
            .join(format!("fake/{}.root/workspace/kept", dst.id)),
    );
    assert_eq!(got.unwrap(), "payload");
    let e = a.delete_snapshot("one").await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Api { status: 409, .. }) && e.to_string().contains("dst"),
        "{e}"
    );
    let e = a
        .create_snapshot(&save("src", "one"), false)
        .await
        .unwrap_err();
    assert!(matches!(&e, ClientError::Api { status: 409, .. }), "{e}");
    let bad = islo_api::CreateSandboxRequest {
        name: Some("other".into()),
        image: Some("busybox".into()),
        snapshot_name: Some("one".into()),
        ..Default::default()
    };
    let e = a.create_sandbox(&bad).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::ValidationError);
    assert!(
        a.get_sandbox("other").await.is_err(),
        "nothing is left of a refused create"
    );

    // Other tenants see nothing; missing things are 404.
    assert_eq!(b.list_snapshots(None, None).await.unwrap().total, 0);
    assert_eq!(
        code(b.get_snapshot("one").await.unwrap_err()),
        ErrorCode::ResourceNotFound
    );
    assert_eq!(
        code(
            b.create_snapshot(&save("src", "x"), false)
                .await
                .unwrap_err()
        ),
        ErrorCode::SandboxNotFound
    );
    let e = a
        .create_snapshot(&CreateSnapshotRequest::default(), false)
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::ValidationError);

    // Imports that are not OCI archives are refused and leave no snapshot.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"not an archive at all").unwrap();
    let mut empty = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_cksum();
    empty.append_data(&mut h, "hello.txt", &b"hi"[..]).unwrap();
    let no_index = dir.path().join("no-index.tar");
    std::fs::write(&no_index, empty.into_inner().unwrap()).unwrap();
    for (path, why) in [
        (&junk, "not a valid OCI archive"),
        (&no_index, "no index.json"),
    ] {
        let e = a
            .import_snapshot("imported", path, false)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ClientError::Api { status: 422, .. }) && e.to_string().contains(why),
            "{e}"
        );
    }
    assert_eq!(
        code(a.get_snapshot("imported").await.unwrap_err()),
        ErrorCode::ResourceNotFound
    );

    a.delete_sandbox("dst").await.unwrap();
    a.delete_snapshot("one").await.unwrap();
    assert_eq!(
        code(a.get_snapshot("one").await.unwrap_err()),
        ErrorCode::ResourceNotFound
    );
}
