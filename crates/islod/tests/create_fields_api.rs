//! Create fields beyond the shape (fake back end): `init` met or refused, `lifecycle`
//! refused rather than ignored, `cache_key` recorded, and the creation's phase and events.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use futures_util::StreamExt;
use islo_api::{CreationPhase, SetupScript};
use serde_json::json;

fn code(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, body } => (status, body.message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn create_fields_are_met_recorded_or_refused() {
    let s = server().await;
    let a = s.client("alpha");
    let mut r = create("minimal");
    r.init = Some(json!({"type": "custom", "capabilities": ["ssh"]}));
    r.cache_key = Some("py312-abc".into());
    let made = a.create_sandbox(&r).await.unwrap();
    assert_eq!(made.cache_key.as_deref(), Some("py312-abc"));
    assert_eq!(made.creation_phase.as_deref(), Some("ready"));
    assert_eq!(
        a.get_sandbox("minimal")
            .await
            .unwrap()
            .creation_phase
            .as_deref(),
        Some("ready")
    );

    for (field, value) in [
        (
            "init",
            json!({"type": "custom", "capabilities": ["docker"]}),
        ),
        ("lifecycle", json!({"pause_after_idle": 600})),
    ] {
        let mut body = serde_json::to_value(create("refused")).unwrap();
        body[field] = value;
        let (status, out) = a
            .raw(
                "POST",
                "/sandboxes",
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(status, 422, "{field}: {}", String::from_utf8_lossy(&out));
        assert!(String::from_utf8_lossy(&out).contains(field));
    }
    assert_eq!(
        code(a.get_sandbox("refused").await.unwrap_err()).0,
        404,
        "nothing made"
    );

    // Events of a creation over: its last phase at once.
    let evs: Vec<_> = a.creation_events("minimal").await.unwrap().collect().await;
    let phases: Vec<CreationPhase> = evs.into_iter().map(|e| e.unwrap().phase).collect();
    assert_eq!(phases.last(), Some(&CreationPhase::Ready));

    // Setup steps are phases too; a failing one ends the creation as failed, with its name
    // (the fake back end has no shell, so every step fails).
    let mut r = create("with-setup");
    r.setup_scripts = Some(vec![SetupScript {
        name: Some("deps".into()),
        script: "true".into(),
    }]);
    a.create_sandbox(&r).await.unwrap();
    let evs: Vec<_> = a
        .creation_events("with-setup")
        .await
        .unwrap()
        .collect()
        .await;
    let last = evs.last().unwrap().as_ref().unwrap();
    assert_eq!(last.phase, CreationPhase::Failed);
    assert!(last.detail.as_deref().unwrap().contains("deps"), "{last:?}");
    assert_eq!(code(a.creation_events("nope").await.err().unwrap()).0, 404);
}
