//! Create fields beyond the shape (fake back end): `init` met or refused, `lifecycle`
//! validated, echoed and acted on (pause, resume, auto-resume), `cache_key` recorded, and the
//! creation's phase and events.

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
        ("lifecycle", json!({"pause_after_idle": 0})),
        ("lifecycle", json!({"auto_resume": "sometimes"})),
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

#[tokio::test]
async fn lifecycle_is_echoed_and_auto_resume_decides_what_activity_does_to_a_paused_sandbox() {
    let s = server().await;
    let a = s.client("alpha");
    let exec = islo_api::ExecRequest {
        command: vec!["true".into()],
        ..Default::default()
    };
    let mut r = create("waker");
    r.lifecycle = Some(islo_api::LifecyclePolicy {
        pause_after_idle: Some(600),
        auto_resume: Some(islo_api::AutoResume::OnActivity),
        ..Default::default()
    });
    let made = a.create_sandbox(&r).await.unwrap();
    assert_eq!(made.lifecycle, r.lifecycle);
    a.create_sandbox(&create("sleeper")).await.unwrap();

    for name in ["waker", "sleeper"] {
        let paused = a.pause_sandbox(name).await.unwrap();
        assert_eq!(paused.status, islo_api::SandboxStatus::Paused);
        // Only a running sandbox pauses: 409, naming the status.
        let (status, msg) = code(a.pause_sandbox(name).await.unwrap_err());
        assert_eq!(status, 409, "{msg}");
        assert!(msg.contains("paused"), "{msg}");
    }
    // on_activity: the exec resumes it first.
    a.exec("waker", &exec).await.unwrap();
    assert_eq!(
        a.get_sandbox("waker").await.unwrap().status,
        islo_api::SandboxStatus::Running
    );
    // never (the default): 409 saying how to resume it, and it stays paused.
    let (status, msg) = code(a.exec("sleeper", &exec).await.unwrap_err());
    assert_eq!(status, 409, "{msg}");
    assert!(msg.contains("islo resume"), "{msg}");
    let listed = a
        .list_sandboxes(50, 0, &[islo_api::SandboxStatus::Paused], None)
        .await
        .unwrap();
    let names: Vec<&str> = listed.items.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["sleeper"]);
    let resumed = a.resume_sandbox("sleeper").await.unwrap();
    assert_eq!(resumed.status, islo_api::SandboxStatus::Running);
    a.exec("sleeper", &exec).await.unwrap();
}

#[tokio::test]
async fn isolation_is_a_class_the_server_offers_and_decides_what_a_sandbox_can_do() {
    let s = server().await;
    let a = s.client("alpha");
    let offered = a.system().await.unwrap().isolation_classes;
    assert_eq!(offered, ["container", "gvisor"]);
    let plain = a.create_sandbox(&create("plain")).await.unwrap();
    assert_eq!(plain.isolation.unwrap().class, "container");
    let mut r = create("gv");
    r.isolation = Some("gvisor".into());
    let gv = a.create_sandbox(&r).await.unwrap();
    let iso = gv.isolation.unwrap();
    assert_eq!(iso.class, "gvisor");
    assert!(iso.host_ids.is_none() && iso.warning.is_none(), "{iso:?}");
    // A class it cannot save is not paused, and says so by name (409).
    let (status, msg) = code(a.pause_sandbox("gv").await.unwrap_err());
    assert_eq!(status, 409, "{msg}");
    assert!(msg.contains("gvisor"), "{msg}");
    assert_eq!(
        a.get_sandbox("gv").await.unwrap().status.as_str(),
        "running"
    );
    // An unknown class: 422 naming what the server offers, and nothing made.
    let mut r = create("vm-box");
    r.isolation = Some("firecracker".into());
    let (status, msg) = code(a.create_sandbox(&r).await.unwrap_err());
    assert_eq!(status, 422, "{msg}");
    assert!(msg.contains("container, gvisor"), "{msg}");
    assert!(a.get_sandbox("vm-box").await.is_err());
}
