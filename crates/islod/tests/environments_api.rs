//! Environments over the API (fake back end): the six endpoints with the reference's shapes,
//! values of secrets never answered, one default per tenant, tenancy and error codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::{
    CreateEnvironmentRequest, EntryKind, EntryPlacement, EnvironmentEntryInput,
    UpdateEnvironmentRequest,
};

fn code(e: ClientError) -> u16 {
    match e {
        ClientError::Api { status, .. } => status,
        other => panic!("not an API error: {other}"),
    }
}

fn var(k: &str, v: &str) -> EnvironmentEntryInput {
    EnvironmentEntryInput {
        kind: EntryKind::Variable,
        key: k.into(),
        value: Some(v.into()),
        placement: None,
        rule: None,
    }
}

#[tokio::test]
async fn environments_round_trip_with_the_reference_shapes() {
    let s = server().await;
    let (a, b) = (s.client("alpha"), s.client("beta"));
    let secret = EnvironmentEntryInput {
        kind: EntryKind::Secret,
        key: "DB".into(),
        value: Some("hunter2".into()),
        placement: Some(EntryPlacement::SandboxEnv),
        rule: None,
    };
    let req = CreateEnvironmentRequest {
        name: "dev".into(),
        is_default: Some(true),
        entries: Some(vec![var("A", "1"), secret.clone()]),
    };
    let dev = a.create_environment(&req).await.unwrap();
    assert!(dev.id.starts_with("env_") && dev.is_default);
    let text = serde_json::to_string(&dev).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    let db = dev.entries.iter().find(|e| e.key == "DB").unwrap();
    assert_eq!((db.value.as_deref(), db.has_value), (None, Some(true)));

    let listed = a.environments().await.unwrap();
    assert_eq!((listed[0].variable_count, listed[0].secret_count), (1, 1));
    assert_eq!(
        a.environment(&dev.id).await.unwrap(),
        a.environment("dev").await.unwrap()
    );
    assert_eq!(code(a.create_environment(&req).await.unwrap_err()), 409);
    assert_eq!(code(b.environment("dev").await.unwrap_err()), 404);

    // A second default takes over; a rename keeps the id; entries are replaced whole, a
    // secret without a value keeping the stored one.
    let mut prod = req.clone();
    prod.name = "prod".into();
    a.create_environment(&prod).await.unwrap();
    assert!(!a.environment("dev").await.unwrap().is_default);
    let mut keep = secret.clone();
    keep.value = None;
    let up = UpdateEnvironmentRequest {
        name: Some("dev2".into()),
        is_default: None,
        entries: Some(vec![keep, var("B", "2")]),
    };
    let dev2 = a.update_environment("dev", &up).await.unwrap();
    assert_eq!(
        (dev2.id.as_str(), dev2.name.as_str()),
        (dev.id.as_str(), "dev2")
    );
    let keys: Vec<&str> = dev2.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["B", "DB"]);
    assert_eq!(dev2.entries[1].has_value, Some(true));
    assert!(a.set_default_environment("dev2").await.unwrap().is_default);
    assert!(!a.environment("prod").await.unwrap().is_default);

    // Bad values are 422; a rename onto another's name 409; unknown 404.
    let bad = CreateEnvironmentRequest {
        name: "x".into(),
        entries: Some(vec![var("9X", "v")]),
        ..Default::default()
    };
    assert_eq!(code(a.create_environment(&bad).await.unwrap_err()), 422);
    let clash = UpdateEnvironmentRequest {
        name: Some("prod".into()),
        ..Default::default()
    };
    assert_eq!(
        code(a.update_environment("dev2", &clash).await.unwrap_err()),
        409
    );
    a.delete_environment("dev2").await.unwrap();
    assert_eq!(code(a.delete_environment("dev2").await.unwrap_err()), 404);

    // A sandbox made without naming one gets no default once it is gone; naming an unknown
    // one is 404 and makes nothing.
    let mut c = create("web");
    c.environment = Some("nope".into());
    assert_eq!(code(a.create_sandbox(&c).await.unwrap_err()), 404);
    assert_eq!(code(a.get_sandbox("web").await.unwrap_err()), 404);
}
