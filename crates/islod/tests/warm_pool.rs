//! Sandboxes started ahead (`warm_pool`, fake back end): a create of the pool's kind takes one
//! (its name, env, hostname and tenant are the caller's, nothing of the pool shows), a create
//! of another kind is made as ever and turns the pool to its kind (the same image by another
//! name is the same kind), a taken name is refused
//! without spending a warm sandbox, one that cannot be handed over is removed and the create
//! made as ever, and a pool of 0 at start removes what an earlier one left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use islo_api::{ExecRequest, SandboxStatus};
use islo_client::ExecStreamEvent;
use islod::app::WARM_TENANT;
use islod::store::SandboxFilter;

/// A server whose app keeps `n` sandboxes warm (always over the single host's store: a node
/// of a cluster keeps none).
async fn warm_server(n: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("islod.db")).unwrap());
    server_on(dir, store, n).await
}

/// The pool's sandboxes' records.
fn pool_rows(s: &Server) -> Vec<islod::store::SandboxRow> {
    let t = s.store.ensure_tenant(WARM_TENANT).unwrap();
    let f = SandboxFilter {
        limit: 100,
        ..Default::default()
    };
    s.store.list_sandboxes(&t, &f).unwrap().0
}

/// The pool's sandboxes: (id, name, memory MB, status).
fn pool(s: &Server) -> Vec<(String, String, u32, SandboxStatus)> {
    pool_rows(s)
        .into_iter()
        .map(|r| (r.id, r.name, r.memory_mb, r.status))
        .collect()
}

/// Wait until the pool holds `n` running sandboxes of `memory_mb` and nothing else.
async fn pool_becomes(s: &Server, n: usize, memory_mb: u32) -> Vec<String> {
    for _ in 0..500 {
        let p = pool(s);
        if p.len() == n
            && p.iter()
                .all(|(_, _, m, st)| *m == memory_mb && *st == SandboxStatus::Running)
        {
            return p.into_iter().map(|(id, ..)| id).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the pool never held {n} of {memory_mb} MB: {:?}", pool(s));
}

async fn run(c: &Client, name: &str, argv: &[&str]) -> String {
    let ex = ExecRequest {
        command: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let mut events = Box::pin(c.exec_stream(name, &ex).await.unwrap());
    let mut out = Vec::new();
    while let Some(ev) = events.next().await {
        match ev.unwrap() {
            ExecStreamEvent::Stdout(b) => out.extend(b),
            ExecStreamEvent::Exit(code) => assert_eq!(code, 0, "{argv:?}"),
            _ => {}
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_create_of_the_pools_kind_takes_a_warm_sandbox() {
    let s = warm_server(2).await;
    let c = s.client("alpha");
    assert!(pool(&s).is_empty(), "no kind is known before a create");
    let first = c.create_sandbox(&create("first")).await.unwrap();
    let warm = pool_becomes(&s, 2, first.spec.unwrap().memory_mb).await;
    assert!(!warm.contains(&first.id));

    let mut req = create("taken");
    req.env = Some([("GREETING".to_string(), "hi".to_string())].into());
    req.workdir = Some("/srv".into());
    let taken = c.create_sandbox(&req).await.unwrap();
    assert!(
        warm.contains(&taken.id),
        "{} is not one of {warm:?}",
        taken.id
    );
    assert_eq!(
        (taken.name.as_str(), taken.status, taken.workdir.as_deref()),
        ("taken", SandboxStatus::Running, Some("/srv"))
    );
    assert_eq!(run(&c, "taken", &["hostname"]).await, "taken\n");
    assert!(run(&c, "taken", &["env"]).await.contains("GREETING=hi\n"));
    let listed = c.list_sandboxes(100, 0, &[], None).await.unwrap();
    let mut names: Vec<_> = listed.items.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["first", "taken"],
        "the pool's sandboxes are nobody's"
    );
    let still_warm = warm.iter().find(|w| **w != taken.id).unwrap();
    assert_eq!(
        code(c.get_sandbox_by_id(still_warm).await.unwrap_err()),
        ErrorCode::SandboxNotFound,
        "a warm sandbox is not the tenant's"
    );
    let refilled = pool_becomes(&s, 2, 2048).await;
    let info = c.system().await.unwrap();
    assert_eq!(info.sandboxes_running, 2, "the pool's are not counted");
    assert!(!refilled.contains(&taken.id), "taken out of the pool");

    // A taken name costs the pool nothing.
    assert_eq!(
        code(c.create_sandbox(&create("taken")).await.unwrap_err()),
        ErrorCode::SandboxAlreadyExists
    );
    assert_eq!(pool_becomes(&s, 2, 2048).await, refilled);

    // The same image by another name is the same kind; the sandbox keeps the caller's name.
    let mut full = create("spelled");
    full.image = Some(format!("docker.io/library/{IMAGE}"));
    let spelled = c.create_sandbox(&full).await.unwrap();
    assert!(refilled.contains(&spelled.id), "{} not warm", spelled.id);
    let got = c.get_sandbox("spelled").await.unwrap();
    assert_eq!(got.image, format!("docker.io/library/{IMAGE}"));
    c.delete_sandbox("spelled").await.unwrap();
    let refilled = pool_becomes(&s, 2, 2048).await;

    // Another kind is made as ever; the pool turns to it.
    let mut other = create("other");
    other.memory_mb = Some(1024);
    let made = c.create_sandbox(&other).await.unwrap();
    assert!(!refilled.contains(&made.id));
    pool_becomes(&s, 2, 1024).await;

    c.delete_sandbox("taken").await.unwrap();
    assert_eq!(
        code(c.get_sandbox("taken").await.unwrap_err()),
        ErrorCode::SandboxNotFound
    );
}

#[tokio::test]
async fn a_warm_sandbox_that_cannot_be_handed_over_is_removed_and_the_create_made_as_ever() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("islod.db")).unwrap());
    let driver = fake_driver(dir.path());
    let s = server_with(dir, store, 1, driver.clone()).await;
    let c = s.client("alpha");
    c.create_sandbox(&create("first")).await.unwrap();
    let warm = pool_becomes(&s, 1, 2048).await;
    driver.refuse_hand_overs();
    let made = c.create_sandbox(&create("second")).await.unwrap();
    assert_eq!(made.status, SandboxStatus::Running);
    assert!(!warm.contains(&made.id), "made as ever, not taken");
    assert_eq!(run(&c, "second", &["hostname"]).await, "second\n");
    let gone = s
        .store
        .sandbox_by_id(&s.store.ensure_tenant(WARM_TENANT).unwrap(), &warm[0]);
    assert!(gone.unwrap().is_none(), "the warm sandbox was removed");
    pool_becomes(&s, 1, 2048).await;
}

#[tokio::test]
async fn a_pool_of_none_removes_what_an_earlier_pool_left() {
    let s = warm_server(1).await;
    let c = s.client("alpha");
    c.create_sandbox(&create("first")).await.unwrap();
    let left = pool_becomes(&s, 1, 2048).await;
    let again = app_warm(s.dir.path(), s.store.clone(), 0);
    assert!(again.keep_warm().await.unwrap().is_none());
    assert!(pool(&s).is_empty(), "{left:?} still held");

    // An installation that never had a pool gets no tenant for one.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("islod.db")).unwrap());
    let never = app_warm(dir.path(), store.clone(), 0);
    assert!(never.keep_warm().await.unwrap().is_none());
    assert_eq!(store.tenant_id(WARM_TENANT).unwrap(), None);
    assert_eq!(
        c.get_sandbox("first").await.unwrap().status,
        SandboxStatus::Running,
        "the tenant's sandboxes are not the pool's"
    );
}

/// The pool's running sandboxes and their images' digests.
fn pool_digests(s: &Server) -> Vec<Option<String>> {
    pool_rows(s)
        .into_iter()
        .filter(|r| r.status == SandboxStatus::Running)
        .map(|r| r.stored.image_digest)
        .collect()
}

#[tokio::test]
async fn a_pool_whose_image_moved_turns_to_what_it_makes_now() {
    let s = warm_server(2).await;
    let c = s.client("alpha");
    c.create_sandbox(&create("first")).await.unwrap();
    pool_becomes(&s, 2, 2048).await;
    // The image's name now points at other content (pulled again), and a larger pool starts:
    // what it makes is not the kind it holds.
    let moved = Some("sha256:11".to_string());
    s.store
        .put_image(&islod::store::ImageRow {
            reference: format!("docker.io/library/{IMAGE}"),
            digest: "sha256:11".into(),
            config: "{}".into(),
            layers: vec![],
        })
        .unwrap();
    let larger = app_warm(s.dir.path(), s.store.clone(), 3);
    let _refill = larger.keep_warm().await.unwrap().unwrap();
    for _ in 0..500 {
        let d = pool_digests(&s);
        if d.len() == 3 && d.iter().all(|d| *d == moved) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the pool never held 3 of the moved image: {:?}",
        pool_digests(&s)
    );
}
