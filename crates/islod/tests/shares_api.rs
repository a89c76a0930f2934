//! Shares over the API (fake back end): fields checked with 422 naming them, a sandbox that
//! is not running refused, tenancy, revocation by id or URL, expiry, and removal with the
//! sandbox. Proxying through a real sandbox is `islo-cli/tests/shares.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::CreateShareRequest;
use islod::app::ShareRefusal;

fn req(port: i64, ttl: Option<i64>) -> CreateShareRequest {
    CreateShareRequest {
        port,
        ttl_seconds: ttl,
    }
}

fn status(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, body } => (status, body.message),
        other => panic!("not an API error: {other}"),
    }
}

fn token(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn shares_are_checked_owned_revoked_and_expire() {
    let s = server().await;
    let (a, b) = (s.client("alpha"), s.client("beta"));
    a.create_sandbox(&create("web")).await.unwrap();

    let sh = a.create_share("web", &req(8080, None)).await.unwrap();
    assert!(sh.share_id.starts_with("sh_"));
    assert!(sh.url.starts_with("http://shares.test/s/"), "{}", sh.url);
    assert_eq!(sh.port, 8080);
    let created = time::OffsetDateTime::parse(
        &sh.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        sh.expires_at.as_deref().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        (expires - created).whole_seconds(),
        86_400,
        "24 h by default"
    );
    assert_eq!(a.shares("web").await.unwrap(), std::slice::from_ref(&sh));
    let target = s.app.share_target(&token(&sh.url)).ok().unwrap();
    assert_eq!((target.port, target.sandbox.name.as_str()), (8080, "web"));

    // Bad fields: 422 naming the field; nothing stored.
    for (r, field) in [
        (req(0, None), "port"),
        (req(65536, None), "port"),
        (req(80, Some(59)), "ttl_seconds"),
        (req(80, Some(604_801)), "ttl_seconds"),
    ] {
        let (code, msg) = status(a.create_share("web", &r).await.unwrap_err());
        assert_eq!(code, 422, "{msg}");
        assert!(msg.starts_with(field), "{msg}");
    }
    assert_eq!(a.shares("web").await.unwrap().len(), 1);

    // Another tenant sees none of it.
    assert_eq!(status(b.shares("web").await.unwrap_err()).0, 404);
    assert_eq!(
        status(b.revoke_share("web", &sh.share_id).await.unwrap_err()).0,
        404
    );

    // Revoked by URL: gone from the list and from its URL; twice is 404.
    let second = a.create_share("web", &req(3000, Some(60))).await.unwrap();
    a.revoke_share("web", &second.url).await.unwrap();
    assert_eq!(
        status(a.revoke_share("web", &second.share_id).await.unwrap_err()).0,
        404
    );
    assert_eq!(a.shares("web").await.unwrap(), std::slice::from_ref(&sh));
    assert_eq!(
        s.app.share_target(&token(&second.url)).err(),
        Some(ShareRefusal::Gone)
    );
    assert!(
        a.share_requests("web", &second.share_id, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Expired: no longer listed or served.
    let db = rusqlite::Connection::open(s.dir.path().join("islod.db")).unwrap();
    db.execute(
        "UPDATE shares SET expires_at = '2020-01-01T00:00:00Z' WHERE id = ?1",
        [&sh.share_id],
    )
    .unwrap();
    assert!(a.shares("web").await.unwrap().is_empty());
    assert_eq!(
        s.app.share_target(&token(&sh.url)).err(),
        Some(ShareRefusal::Gone)
    );

    // A stopped sandbox cannot be shared, and its shares say it is not running.
    let live = a.create_share("web", &req(8080, None)).await.unwrap();
    a.stop_sandbox("web").await.unwrap();
    let (code, msg) = status(a.create_share("web", &req(8080, None)).await.unwrap_err());
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("not running"), "{msg}");
    assert!(matches!(
        s.app.share_target(&token(&live.url)),
        Err(ShareRefusal::NotRunning(_))
    ));

    // Removing the sandbox ends its shares.
    a.delete_sandbox("web").await.unwrap();
    assert_eq!(
        s.app.share_target(&token(&live.url)).err(),
        Some(ShareRefusal::Gone)
    );
    assert_eq!(status(a.shares("nope").await.unwrap_err()).0, 404);
}
