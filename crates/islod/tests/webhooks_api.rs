//! Incoming webhooks over the API (fake back end): the reference's shapes, secrets redacted,
//! what islod cannot do refused with 422, tenancy, disabling and removal, and the receiver's
//! answers (`none` auth, body-hash idempotency, delete_sandbox and pause_sandbox actions
//! carried out).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::{CreateWebhookRequest, UpdateWebhookRequest, WebhookStatus};
use serde_json::json;

fn code(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, body } => (status, body.message),
        other => panic!("not an API error: {other}"),
    }
}

fn req(v: serde_json::Value) -> CreateWebhookRequest {
    serde_json::from_value(v).unwrap()
}

fn base() -> serde_json::Value {
    json!({"name": "cleanup",
           "auth": {"auth_type": "bearer_static", "token": {"name": "t", "value": "s3cret"}},
           "idempotency": {"source": "body_sha256"},
           "target": {"target_type": "fixed_sandbox_name", "sandbox_name": "victim"},
           "rules": [{"actions": [{"action_type": "delete_sandbox"}]}]})
}

#[tokio::test]
async fn webhooks_are_checked_redacted_and_act() {
    let s = server().await;
    let (a, b) = (s.client("alpha"), s.client("beta"));
    let w = a.create_webhook(&req(base())).await.unwrap();
    assert!(w.id.starts_with("wh_") && w.receiver_url.ends_with(&format!("/hooks/{}", w.id)));
    assert_eq!(
        w.auth,
        json!({"auth_type": "bearer_static", "secret_redacted": true, "secret_ref": {"name": "t"}})
    );
    assert_eq!(w.status, WebhookStatus::Active);
    assert_eq!(a.webhooks().await.unwrap().len(), 1);
    assert_eq!(code(b.webhook(&w.id).await.unwrap_err()).0, 404);

    for (field, value) in [
        (
            "auth",
            json!({"auth_type": "jwt", "jwks_url": "https://x/jwks"}),
        ),
        (
            "rules",
            json!([{"actions": [{"action_type": "trigger_job", "job_name": "j"}]}]),
        ),
        (
            "target",
            json!({"target_type": "fixed_sandbox_name", "sandbox_name": "Bad Name"}),
        ),
    ] {
        let mut v = base();
        v[field] = value;
        let (status, msg) = code(a.create_webhook(&req(v)).await.unwrap_err());
        assert_eq!(status, 422, "{field}: {msg}");
    }

    // The receiver: the sender's token is the check; the action runs.
    a.create_sandbox(&create("victim")).await.unwrap();
    let anon = Client::new(Endpoint::Http(s.tcp.clone()), None).unwrap();
    let path = format!("/hooks/{}", w.id);
    let (status, _) = anon.raw("POST", &path, Some(b"{}".to_vec())).await.unwrap();
    assert_eq!(status, 401, "no token");
    let with_token = Client::new(Endpoint::Http(s.tcp.clone()), Some("s3cret".into())).unwrap();
    let (status, out) = with_token
        .raw("POST", &path, Some(b"{\"n\":1}".to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&out));
    let mut gone = false;
    for _ in 0..100 {
        if a.get_sandbox("victim").await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "delete_sandbox ran");
    let (status, out) = with_token
        .raw("POST", &path, Some(b"{\"n\":1}".to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 200, "same body, same event");
    assert!(String::from_utf8_lossy(&out).contains("\"duplicate\":true"));

    // Disabled: the receiver no longer answers; removed: gone from the list.
    let off = UpdateWebhookRequest {
        status: Some(WebhookStatus::Disabled),
        ..Default::default()
    };
    a.update_webhook(&w.id, &off).await.unwrap();
    let (status, _) = with_token
        .raw("POST", &path, Some(b"{\"n\":2}".to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 404);
    a.delete_webhook(&w.id).await.unwrap();
    assert!(a.webhooks().await.unwrap().is_empty());
    assert_eq!(code(a.delete_webhook(&w.id).await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn a_pause_sandbox_action_pauses_it() {
    let s = server().await;
    let a = s.client("alpha");
    let mut v = base();
    v["name"] = json!("nightly");
    v["target"]["sandbox_name"] = json!("napper");
    v["rules"] = json!([{"actions": [{"action_type": "pause_sandbox"}]}]);
    let w = a.create_webhook(&req(v)).await.unwrap();
    a.create_sandbox(&create("napper")).await.unwrap();
    let with_token = Client::new(Endpoint::Http(s.tcp.clone()), Some("s3cret".into())).unwrap();
    let path = format!("/hooks/{}", w.id);
    let (status, _) = with_token
        .raw("POST", &path, Some(b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 202);
    let mut paused = false;
    for _ in 0..100 {
        if a.get_sandbox("napper").await.unwrap().status == islo_api::SandboxStatus::Paused {
            paused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(paused, "pause_sandbox ran");
}
