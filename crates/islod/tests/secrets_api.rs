//! Secrets and the decision log over the API: presets, validation of every field, values
//! never answered, tenancy, and clear errors for what is not there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::{AuthStrategy, GatewayEventsQuery, SecretRequest};

fn req(value: &str) -> SecretRequest {
    SecretRequest {
        value: value.into(),
        env_vars: None,
        hosts: None,
        auth_strategy: None,
    }
}

fn status(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, body } => (status, body.message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn secrets_are_stored_never_shown_and_checked() {
    let s = server().await;
    let (a, b) = (s.client("alpha"), s.client("beta"));

    // A provider's presets: its env vars, its API hosts, its way of sending the key.
    let gh = a
        .put_secret("anthropic", &req("sk-ant-real\n"))
        .await
        .unwrap();
    assert_eq!(gh.env_vars, ["ANTHROPIC_API_KEY"]);
    assert_eq!(gh.hosts, ["api.anthropic.com"]);
    assert_eq!(gh.auth_strategy.unwrap().name.as_deref(), Some("x-api-key"));
    // A name of one's own gets nothing unless asked.
    let mine = a.put_secret("my-api", &req("v1")).await.unwrap();
    assert!(mine.env_vars.is_empty() && mine.hosts.is_empty() && mine.auth_strategy.is_none());
    // Replacing keeps one record.
    a.put_secret("my-api", &req("v2")).await.unwrap();
    let listed = a.secrets().await.unwrap();
    assert_eq!(listed.len(), 2);
    let text = serde_json::to_string(&listed).unwrap();
    assert!(
        !text.contains("sk-ant-real") && !text.contains("v2"),
        "{text}"
    );
    // Tenants see only their own.
    assert!(b.secrets().await.unwrap().is_empty());
    assert_eq!(status(b.delete_secret("my-api").await.unwrap_err()).0, 404);

    // Every bad field is refused with what is wrong, and nothing is stored.
    let mut bad_env = req("x");
    bad_env.env_vars = Some(vec!["lower".into()]);
    let mut bad_host = req("x");
    bad_host.hosts = Some(vec!["https://x.com/".into()]);
    let mut bad_auth = req("x");
    bad_auth.auth_strategy = Some(AuthStrategy {
        mode: islo_api::AuthMode::Header,
        ..Default::default()
    });
    for (name, r, says) in [
        ("Bad Name", req("x"), "secret name"),
        ("empty", req("\n"), "empty"),
        ("ctl", req("a\u{1}b"), "control characters"),
        ("env", bad_env, "env var"),
        ("host", bad_host, "host glob"),
        ("auth", bad_auth, "header name"),
    ] {
        let (code, msg) = status(a.put_secret(name, &r).await.unwrap_err());
        assert_eq!(code, 422, "{name}: {msg}");
        assert!(msg.contains(says), "{name}: {msg}");
    }
    assert_eq!(a.secrets().await.unwrap().len(), 2);

    a.delete_secret("my-api").await.unwrap();
    assert_eq!(status(a.delete_secret("my-api").await.unwrap_err()).0, 404);
    // The decision log of a sandbox that does not exist.
    let e = a
        .gateway_events("nope", &GatewayEventsQuery::default())
        .await
        .unwrap_err();
    assert_eq!(status(e).0, 404);
    let bad_since = GatewayEventsQuery {
        since: Some("yesterday".into()),
        ..Default::default()
    };
    a.create_sandbox(&create("logged")).await.unwrap();
    let (code, msg) = status(a.gateway_events("logged", &bad_since).await.unwrap_err());
    assert_eq!(code, 422, "{msg}");
    assert!(
        a.gateway_events("logged", &GatewayEventsQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}
