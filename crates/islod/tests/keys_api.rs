//! API keys over the API (fake back end): the secret answered once, tenancy (only the
//! installation's administrator names another tenant), deactivation ending the key and the
//! session tokens it was exchanged for, reactivation, expiry and deletion.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::{ApiKeyStatus, CreateApiKeyRequest};
use islo_client::Endpoint;

fn req(name: &str, tenant: Option<&str>) -> CreateApiKeyRequest {
    CreateApiKeyRequest {
        name: name.into(),
        expires_in_days: None,
        tenant: tenant.map(Into::into),
    }
}

fn code(e: ClientError) -> u16 {
    match e {
        ClientError::Api { status, .. } => status,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn keys_are_made_once_scoped_switched_and_deleted() {
    let s = server().await;
    let admin = Client::new(Endpoint::Unix(s.unix.clone()), None).unwrap();
    let made = admin
        .create_api_key(&req("ci", Some("team-a")))
        .await
        .unwrap();
    assert!(made.api_key.starts_with("islo_key_"));
    assert_eq!(
        (made.key.tenant.as_str(), made.key.status),
        ("team-a", ApiKeyStatus::Active)
    );
    let listed = admin.api_keys().await.unwrap();
    assert!(
        listed.iter().all(|k| k.tenant == "local"),
        "the admin lists its own tenant's"
    );

    // The key works, and lists its tenant's keys without any secret.
    let a = Client::new(Endpoint::Http(s.tcp.clone()), Some(made.api_key.clone())).unwrap();
    let mine = a.api_keys().await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(
        !serde_json::to_string(&mine)
            .unwrap()
            .contains(&made.api_key)
    );
    // A tenant's key makes keys for its own tenant only.
    let own = a.create_api_key(&req("laptop", None)).await.unwrap();
    assert_eq!(own.key.tenant, "team-a");
    assert_eq!(
        code(
            a.create_api_key(&req("x", Some("other")))
                .await
                .unwrap_err()
        ),
        403
    );
    assert_eq!(
        code(a.create_api_key(&req("", None)).await.unwrap_err()),
        422
    );
    let mut bad = req("x", None);
    bad.expires_in_days = Some(0);
    assert_eq!(code(a.create_api_key(&bad).await.unwrap_err()), 422);
    // Other tenants' keys are not found.
    let b = s.client("beta");
    assert_eq!(code(b.delete_api_key(&own.key.id).await.unwrap_err()), 404);

    // Deactivating ends the key and the session tokens it was exchanged for.
    let token = a.token(&own.api_key).await.unwrap().session_token;
    let by_token = Client::new(Endpoint::Http(s.tcp.clone()), Some(token)).unwrap();
    by_token.api_keys().await.unwrap();
    let off = a.set_api_key_active(&own.key.id, false).await.unwrap();
    assert_eq!(off.status, ApiKeyStatus::Inactive);
    let by_key = Client::new(Endpoint::Http(s.tcp.clone()), Some(own.api_key.clone())).unwrap();
    assert_eq!(code(by_key.api_keys().await.unwrap_err()), 401);
    assert_eq!(code(by_token.api_keys().await.unwrap_err()), 401);
    assert_eq!(code(a.token(&own.api_key).await.unwrap_err()), 401);
    a.set_api_key_active(&own.key.id, true).await.unwrap();
    by_key.api_keys().await.unwrap();

    // Expired keys stop working and say so.
    let db = rusqlite::Connection::open(s.dir.path().join("islod.db")).unwrap();
    db.execute(
        "UPDATE api_keys SET expires_at = '2020-01-01T00:00:00Z' WHERE id = ?1",
        [&own.key.id],
    )
    .unwrap();
    assert_eq!(code(by_key.api_keys().await.unwrap_err()), 401);
    let k = a
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.id == own.key.id)
        .unwrap();
    assert_eq!(k.status, ApiKeyStatus::Expired);

    a.delete_api_key(&own.key.id).await.unwrap();
    assert_eq!(code(a.delete_api_key(&own.key.id).await.unwrap_err()), 404);
    assert_eq!(a.api_keys().await.unwrap().len(), 1);

    // The raw call answers whatever the status.
    let (status, body) = a.raw("get", "/api-keys", None).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _) = a.raw("GET", "/nope", None).await.unwrap();
    assert_eq!(status, 404);
}
