//! The dashboard's server side over HTTP (fake back end): its page and assets with their
//! guards, the login cookie and where it is accepted, and its live streams kept per tenant.
//! The pages themselves are driven in a real browser by tests/ui/test_dashboard.py.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use futures_util::StreamExt;
use islo_api::{EventAction, GatewayEventResponse};

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The JSON answer of a request.
async fn json<T: serde::de::DeserializeOwned>(r: reqwest::RequestBuilder) -> T {
    r.send().await.unwrap().json().await.unwrap()
}

/// `POST /ui/login` with `key`; the answer.
async fn login(s: &Server, key: &str, csrf: bool) -> reqwest::Response {
    let mut r = http()
        .post(format!("{}/ui/login", s.tcp))
        .json(&serde_json::json!({ "api_key": key }));
    if csrf {
        r = r.header("X-Islo-CSRF", "1");
    }
    r.send().await.unwrap()
}

/// The session cookie of a successful login, as `name=value`.
async fn session(s: &Server, tenant: &str) -> String {
    let r = login(s, &s.key(tenant), true).await;
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn the_page_and_assets_are_built_in_and_guarded() {
    let s = server().await;
    let page = http().get(format!("{}/ui/", s.tcp)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("assets/app.js"));
    let js = http()
        .get(format!("{}/ui/assets/vendor/xterm.js", s.tcp))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let missing = http()
        .get(format!("{}/ui/assets/../islod.db", s.tcp))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    http();
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/ui", s.tcp))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.headers()["location"], "/ui/");
}

#[tokio::test]
async fn the_session_cookie_works_only_from_the_dashboards_pages() {
    let s = server().await;
    assert_eq!(login(&s, "islo_key_wrong", true).await.status(), 401);
    assert_eq!(
        login(&s, &s.key("alpha"), false).await.status(),
        403,
        "login CSRF"
    );
    let cookie = session(&s, "alpha").await;
    let get = |path: &str| {
        http()
            .get(format!("{}{path}", s.tcp))
            .header("cookie", &cookie)
    };
    assert_eq!(get("/sandboxes").send().await.unwrap().status(), 200);
    let me: serde_json::Value = json(get("/ui/session")).await;
    assert_eq!(me["authenticated"], true);
    assert_eq!(me["tenant"], "alpha");
    let cross = get("/sandboxes")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let cross = get("/sandboxes")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let post = |csrf: bool| {
        let r = http()
            .post(format!("{}/sandboxes", s.tcp))
            .header("cookie", &cookie)
            .json(&create("from-ui"));
        if csrf {
            r.header("X-Islo-CSRF", "1")
        } else {
            r
        }
    };
    assert_eq!(post(false).send().await.unwrap().status(), 403);
    assert_eq!(post(true).send().await.unwrap().status(), 200);
    // Without a cookie, TCP callers are strangers.
    let anon: serde_json::Value = json(http().get(format!("{}/ui/session", s.tcp))).await;
    assert_eq!(anon["authenticated"], false);
    let out = http()
        .post(format!("{}/ui/logout", s.tcp))
        .send()
        .await
        .unwrap();
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

/// The data of the first SSE event of `path` for `key`.
async fn first_event(s: &Server, key: &str, path: &str) -> String {
    let r = http()
        .get(format!("{}{path}", s.tcp))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    seen.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn live_streams_and_decisions_are_per_tenant() {
    let s = server().await;
    let (ka, kb) = (s.key("alpha"), s.key("beta"));
    s.client("alpha")
        .create_sandbox(&create("a-one"))
        .await
        .unwrap();
    s.client("beta")
        .create_sandbox(&create("b-one"))
        .await
        .unwrap();
    let snap: islo_api::ui::SandboxesSnapshot =
        serde_json::from_str(&first_event(&s, &ka, "/sandboxes/-/watch").await).unwrap();
    let names: Vec<_> = snap.sandboxes.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["a-one"]);

    // Decisions across a tenant's sandboxes, and only its own.
    let ta = s.store.ensure_tenant("alpha").unwrap();
    let tb = s.store.ensure_tenant("beta").unwrap();
    let a = s.client("alpha").get_sandbox("a-one").await.unwrap();
    let b = s.client("beta").get_sandbox("b-one").await.unwrap();
    let ev = |sandbox: &str, host: &str| GatewayEventResponse {
        id: 0,
        sandbox_id: sandbox.into(),
        at: "2026-01-01T00:00:00Z".into(),
        scheme: "https".into(),
        host: host.into(),
        method: "GET".into(),
        path: "/".into(),
        rule_id: None,
        action: EventAction::Allow,
        status: 200,
        bytes_up: 1,
        bytes_down: 2,
        latency_ms: 1.0,
        reason: String::new(),
    };
    s.store
        .insert_gateway_events(&[(ta, ev(&a.id, "a.example")), (tb, ev(&b.id, "b.example"))])
        .unwrap();
    let got: islo_api::GatewayEventsResponse = json(
        http()
            .get(format!("{}/gateway/events", s.tcp))
            .bearer_auth(&ka),
    )
    .await;
    let hosts: Vec<_> = got.events.iter().map(|e| e.host.as_str()).collect();
    assert_eq!(hosts, ["a.example"]);
    // Following from before them: the next event is the tenant's own.
    let followed = first_event(&s, &kb, "/gateway/events/watch?after_id=0").await;
    assert!(
        followed.contains("b.example") && !followed.contains("a.example"),
        "{followed}"
    );
}
