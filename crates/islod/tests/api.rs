//! The API in-process over the fake back end (no privileges): authentication on every
//! endpoint, tenancy, the lifecycle, validation, idempotency, reconciliation, and the
//! committed OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use futures_util::StreamExt;
use islo_api::{ExecRequest, ExecStatus, SandboxStatus};
use islo_client::ExecStreamEvent;

/// `/a/{p}/b/{q}` → `/a/x/b/x`.
fn fill_params(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => inside = true,
            '}' => {
                inside = false;
                out.push('x');
            }
            _ if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn every_documented_endpoint_requires_auth_over_tcp() {
    let s = server().await;
    let doc: serde_json::Value = serde_json::from_str(&islod::http::openapi::document()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/auth/token" {
            continue;
        }
        let url = format!("{}{}", s.tcp, fill_params(path));
        for method in item.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for auth in [None, Some("Bearer islo_key_forged"), Some("Basic eDp4")] {
                let mut r = http.request(m.clone(), &url).json(&serde_json::json!({}));
                if let Some(a) = auth {
                    r = r.header("authorization", a);
                }
                let resp = r.send().await.unwrap();
                assert_eq!(resp.status(), 401, "{method} {path} with {auth:?}");
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(body["code"], "AUTH_REQUIRED");
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 30,
        "walked only {checked} endpoint/credential pairs"
    );
}

#[tokio::test]
async fn token_exchange_and_bearer_tokens() {
    let s = server().await;
    let key = s.key("alpha");
    let anon = Client::new(Endpoint::Http(s.tcp.clone()), None).unwrap();
    let tok = anon.token(&key).await.unwrap();
    assert!(tok.session_token.starts_with("islo_st_") && tok.cookie_max_age == 600);
    let c = Client::new(Endpoint::Http(s.tcp.clone()), Some(tok.session_token)).unwrap();
    assert_eq!(c.system().await.unwrap().tenant, "alpha");
    assert_eq!(
        code(anon.token("islo_key_nope").await.unwrap_err()),
        ErrorCode::AuthRequired
    );
    // Keys are stored hashed, never in clear.
    let db = std::fs::read(s.dir.path().join("islod.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&key));
    // The unix socket is the local user's boundary: no token needed there.
    let local = Client::new(Endpoint::Unix(s.unix.clone()), None).unwrap();
    assert_eq!(local.system().await.unwrap().tenant, "local");
}

#[tokio::test]
async fn tenants_see_only_their_own_sandboxes() {
    let s = server().await;
    let (a, b) = (s.client("alpha"), s.client("beta"));
    let sb = a.create_sandbox(&create("mine")).await.unwrap();
    assert_eq!(
        code(b.get_sandbox("mine").await.unwrap_err()),
        ErrorCode::SandboxNotFound
    );
    assert_eq!(
        code(b.get_sandbox_by_id(&sb.id).await.unwrap_err()),
        ErrorCode::SandboxNotFound
    );
    assert_eq!(
        code(b.stop_sandbox("mine").await.unwrap_err()),
        ErrorCode::SandboxNotFound
    );
    assert_eq!(
        code(b.delete_sandbox("mine").await.unwrap_err()),
        ErrorCode::SandboxNotFound
    );
    let ex = ExecRequest {
        command: vec!["true".into()],
        ..Default::default()
    };
    assert_eq!(
        code(b.exec("mine", &ex).await.unwrap_err()),
        ErrorCode::SandboxNotFound
    );
    assert_eq!(b.all_sandboxes(&[]).await.unwrap().len(), 0);
    b.create_sandbox(&create("mine")).await.unwrap();
    assert_eq!(a.get_sandbox("mine").await.unwrap().id, sb.id);
}

#[tokio::test]
async fn lifecycle_exec_and_deleted_records() {
    let s = server().await;
    let c = s.client("alpha");
    let mut req = create("life");
    req.env = Some([("GREETING".to_string(), "hi".to_string())].into());
    let sb = c.create_sandbox(&req).await.unwrap();
    assert_eq!(
        (sb.status, sb.workdir.as_deref()),
        (SandboxStatus::Running, Some("/workspace"))
    );
    assert_eq!(
        code(c.create_sandbox(&create("life")).await.unwrap_err()),
        ErrorCode::SandboxAlreadyExists
    );
    let iso = sb.isolation.clone().expect("the isolation is reported");
    let ids = iso.host_ids.expect("a user namespace of its own");
    assert!(iso.user_namespace && iso.warning.is_none(), "{iso:?}");
    assert_eq!(
        (ids.first, ids.count),
        (1 << 30, 65536),
        "the first range of the pool"
    );

    let ex = ExecRequest {
        command: vec!["echo".into(), "a".into(), "b".into()],
        ..Default::default()
    };
    let mut events = Box::pin(c.exec_stream("life", &ex).await.unwrap());
    let mut got = Vec::new();
    while let Some(ev) = events.next().await {
        got.push(ev.unwrap());
    }
    assert_eq!(
        got,
        vec![
            ExecStreamEvent::Stdout(b"a b\n".to_vec()),
            ExecStreamEvent::Exit(0)
        ]
    );

    let started = c
        .exec(
            "life",
            &ExecRequest {
                command: vec!["exit".into(), "5".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (started.status, started.sandbox_id.as_str()),
        (ExecStatus::Running, sb.id.as_str())
    );
    let mut res = c.exec_result("life", &started.exec_id).await.unwrap();
    for _ in 0..100 {
        if res.status != ExecStatus::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        res = c.exec_result("life", &started.exec_id).await.unwrap();
    }
    assert_eq!(
        (res.status, res.exit_code),
        (ExecStatus::Completed, Some(5))
    );
    assert_eq!(
        code(c.exec_result("life", "nope").await.unwrap_err()),
        ErrorCode::ResourceNotFound
    );

    assert_eq!(
        c.stop_sandbox("life").await.unwrap().status,
        SandboxStatus::Stopped
    );
    assert_eq!(
        code(c.exec("life", &ex).await.unwrap_err()),
        ErrorCode::SandboxInvalidState
    );
    assert_eq!(
        c.resume_sandbox("life").await.unwrap().status,
        SandboxStatus::Running
    );
    c.delete_sandbox("life").await.unwrap();
    let gone = c.get_sandbox_by_id(&sb.id).await.unwrap();
    assert_eq!(gone.status, SandboxStatus::Deleted);
    assert!(gone.deleted_at.is_some());
    assert_eq!(
        c.all_sandboxes(&[SandboxStatus::Deleted])
            .await
            .unwrap()
            .len(),
        1
    );
    let again = c.create_sandbox(&create("life")).await.unwrap();
    assert_eq!(again.status, SandboxStatus::Running, "names are reusable");
    assert_eq!(
        again.isolation.and_then(|i| i.host_ids).map(|h| h.first),
        Some(1 << 30),
        "rm freed the range"
    );
}

#[tokio::test]
async fn validation_errors_say_what_is_wrong() {
    let s = server().await;
    let c = s.client("alpha");
    let bad = [
        CreateSandboxRequest {
            name: Some("bad name".into()),
            ..create("valid-name")
        },
        CreateSandboxRequest {
            vcpus: Some(0),
            ..create("valid-name")
        },
        CreateSandboxRequest {
            memory_mb: Some(9000),
            ..create("valid-name")
        },
        CreateSandboxRequest {
            disk_gb: Some(101),
            ..create("valid-name")
        },
        CreateSandboxRequest {
            workdir: Some("../etc".into()),
            ..create("valid-name")
        },
    ];
    for req in bad {
        let e = c.create_sandbox(&req).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Api { status: 422, .. }),
            "{req:?}: {e}"
        );
    }
    let e = c
        .create_sandbox(&CreateSandboxRequest {
            image: Some("Not A Ref".into()),
            ..create("valid-name")
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidRequest);
    assert!(
        c.all_sandboxes(&[]).await.unwrap().is_empty(),
        "failed creates leave nothing"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let key = s.key("alpha");
    for (method, path, body) in [
        ("POST", "/sandboxes", "{not json"),
        ("GET", "/sandboxes?limit=0", ""),
        ("GET", "/sandboxes?status=dozing", ""),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = http
            .request(m, format!("{}{path}", s.tcp))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{method} {path}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["code"], "VALIDATION_ERROR");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn request_id_replays_and_conflicts() {
    let s = server().await;
    let c = s.client("alpha");
    let req = CreateSandboxRequest {
        request_id: Some("r-1".into()),
        ..create("idem")
    };
    let a = c.create_sandbox(&req).await.unwrap();
    let b = c.create_sandbox(&req).await.unwrap();
    assert_eq!(a.id, b.id);
    let other = CreateSandboxRequest {
        vcpus: Some(4),
        ..req
    };
    assert_eq!(
        code(c.create_sandbox(&other).await.unwrap_err()),
        ErrorCode::SandboxAlreadyExists
    );
}

#[tokio::test]
async fn list_pages_and_filters() {
    let s = server().await;
    let c = s.client("alpha");
    for n in ["web-1", "web-2", "web-3", "db-1"] {
        c.create_sandbox(&create(n)).await.unwrap();
    }
    c.stop_sandbox("db-1").await.unwrap();
    let page = c.list_sandboxes(2, 0, &[], Some("web-")).await.unwrap();
    assert_eq!(
        (page.items.len(), page.total, page.limit, page.offset),
        (2, 3, 2, 0)
    );
    let stopped = c
        .list_sandboxes(50, 0, &[SandboxStatus::Stopped], None)
        .await
        .unwrap();
    assert_eq!(
        stopped
            .items
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["db-1"]
    );
    assert_eq!(c.all_sandboxes(&[]).await.unwrap().len(), 4);
    assert_eq!(page.next_cursor.as_deref(), Some("o2"));

    // What the SDKs send: q (wins over search), created_by, cursor.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (http, key) = (reqwest::Client::new(), s.key("alpha"));
    let get = |query: &'static str| {
        let req = http
            .get(format!("{}/sandboxes?{query}", s.tcp))
            .bearer_auth(&key);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        let mut n: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    // (Terms with a letter outside hex: ids are searched too.)
    let (_, v) = get("q=WEB-&search=web-3").await;
    assert_eq!(names(&v), ["web-1", "web-2", "web-3"]);
    let (_, v) = get("search=web-3").await;
    assert_eq!(names(&v), ["web-3"]);
    let (_, first) = get("limit=3&created_by=me").await;
    assert_eq!(
        (
            first["total"].as_u64(),
            first["items"].as_array().unwrap().len()
        ),
        (Some(4), 3)
    );
    let (_, rest) = get("limit=3&cursor=o3").await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(
        rest.get("next_cursor").is_none(),
        "the last page has none: {rest}"
    );
    let (_, none) = get("created_by=someone-else").await;
    assert_eq!(none["total"], 0);
    let (status, bad) = get("cursor=nonsense").await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (422, Some("VALIDATION_ERROR"))
    );
}

#[tokio::test]
async fn reconcile_marks_lost_sandboxes_and_undoes_interrupted_creates() {
    let s = server().await;
    let c = s.client("alpha");
    c.create_sandbox(&create("lost")).await.unwrap();
    let tenant = s.store.ensure_tenant("alpha").unwrap();
    let row = s.store.sandbox_by_name(&tenant, "lost").unwrap().unwrap();
    let mut half = row.clone();
    half.id = "interrupted".into();
    half.name = "half".into();
    half.status = SandboxStatus::Starting;
    half.request_id = None;
    s.store.insert_sandbox(&half).unwrap();
    // A new server over the same state whose back end knows none of them (as after a reboot).
    let dir = tempfile::tempdir().unwrap();
    let fresh = app_over(dir.path(), s.store.clone());
    let done = fresh.reconcile().await.unwrap();
    assert_eq!(done.undone_creates, 1);
    assert!(s.store.sandbox_by_name(&tenant, "half").unwrap().is_none());
    let lost = s.store.sandbox_by_name(&tenant, "lost").unwrap().unwrap();
    assert_eq!(lost.status, SandboxStatus::Failed);
    assert!(lost.status_reason.unwrap().contains("gone"));
    // The original server's sandboxes are untouched by its own reconcile: all adopted.
    let again = s.app.reconcile().await.unwrap();
    assert_eq!(again.adopted, 0, "lost is failed now, not running");
}

#[test]
fn committed_openapi_document_matches_the_code() {
    let committed = include_str!("../../../openapi.json");
    assert!(
        committed == islod::http::openapi::document(),
        "openapi.json is stale: run `cargo run -p islod -- openapi > openapi.json`"
    );
}

fn size() -> islo_api::PtySize {
    islo_api::PtySize { rows: 24, cols: 80 }
}

/// The first frame a terminal socket answers with.
async fn first_frame(conn: islo_client::PtyConn) -> islo_api::PtyFrame {
    let (_tx, mut rx) = conn.split();
    let f = tokio::time::timeout(std::time::Duration::from_secs(5), rx.next()).await;
    f.expect("an answer")
        .expect("a frame")
        .expect("a valid frame")
}

#[tokio::test]
async fn terminal_sockets_refuse_bad_openings_clearly() {
    let s = server().await;
    let c = s.client("alpha");
    c.create_sandbox(&create("term")).await.unwrap();
    let exec = ExecRequest {
        command: vec!["true".into()],
        ..Default::default()
    };

    let open = islo_api::PtyOpen {
        version: 99,
        size: size(),
        exec: Some(exec.clone()),
        tty: None,
    };
    match first_frame(c.pty("/sandboxes/term/exec", &open).await.unwrap()).await {
        islo_api::PtyFrame::Error(m) => assert!(m.contains("version 99"), "{m}"),
        other => panic!("{other:?}"),
    }
    let open = islo_api::PtyOpen {
        version: 1,
        size: size(),
        exec: None,
        tty: None,
    };
    match first_frame(c.pty("/sandboxes/term/exec", &open).await.unwrap()).await {
        islo_api::PtyFrame::Error(m) => assert!(m.contains("needs a command"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Problems known before the upgrade are plain HTTP errors.
    let e = c
        .pty_exec("ghost", exec.clone(), size(), false)
        .await
        .err()
        .unwrap();
    assert_eq!(code(e), ErrorCode::SandboxNotFound);
    let e = c
        .pty_attach("term", "bad name", None, size())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::Api { status: 422, .. }), "{e}");
    c.stop_sandbox("term").await.unwrap();
    let e = c.pty_exec("term", exec, size(), true).await.err().unwrap();
    assert_eq!(code(e), ErrorCode::SandboxInvalidState);
    c.resume_sandbox("term").await.unwrap();
    // A back end without terminals says so instead of hanging.
    let conn = c
        .pty_attach("term", "main", Some(ExecRequest::default()), size())
        .await
        .unwrap();
    match first_frame(conn).await {
        islo_api::PtyFrame::Error(m) => assert!(m.contains("no terminal sessions"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn execs_are_recorded_and_log_queries_are_checked() {
    let s = server().await;
    let (a, b) = (s.client("alpha"), s.client("beta"));
    a.create_sandbox(&create("rec")).await.unwrap();
    let ex = ExecRequest {
        command: vec!["echo".into(), "a b".into()],
        ..Default::default()
    };
    let mut events = Box::pin(a.exec_stream("rec", &ex).await.unwrap());
    while events.next().await.is_some() {}

    let list = a.exec_sessions("rec", None).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].command.as_str(),
            list[0].exit_code,
            list[0].is_interactive
        ),
        ("echo 'a b'", Some(0), false)
    );
    let q = islo_api::ExecLogsQuery::default();
    let logs = a.exec_logs("rec", &list[0].exec_id, &q).await.unwrap();
    assert_eq!(
        (
            logs.logs.len(),
            logs.logs[0].data.as_str(),
            logs.logs[0].stream.as_str()
        ),
        (1, "a b\n", "stdout")
    );

    let bad = islo_api::ExecLogsQuery {
        since: Some("yesterday".into()),
        ..Default::default()
    };
    let e = a
        .exec_logs("rec", &list[0].exec_id, &bad)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Api { status: 422, .. }) && e.to_string().contains("RFC 3339"),
        "{e}"
    );
    assert_eq!(
        code(a.exec_logs("rec", "nope", &q).await.unwrap_err()),
        ErrorCode::ResourceNotFound
    );
    assert_eq!(
        code(b.exec_sessions("rec", None).await.unwrap_err()),
        ErrorCode::SandboxNotFound
    );
    // Logs outlive their sandbox: read by id after deletion.
    let id = a.get_sandbox("rec").await.unwrap().id;
    a.delete_sandbox("rec").await.unwrap();
    assert_eq!(a.exec_sessions(&id, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_trailing_slash_reaches_the_same_route() {
    let s = server().await;
    let c = s.client("alpha");
    let body = serde_json::to_vec(&create("slashed")).unwrap();
    let (status, out) = c.raw("POST", "/sandboxes/", Some(body)).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let (status, out) = c.raw("GET", "/sandboxes/?limit=5", None).await.unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&out).contains("slashed"));
    let (status, _) = c.raw("GET", "/sandboxes/slashed/", None).await.unwrap();
    assert_eq!(status, 200);
    let (status, _) = c.raw("GET", "/nothing/here/", None).await.unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn status_paused_is_a_word_lists_accept() {
    let s = server().await;
    let c = s.client("alpha");
    c.create_sandbox(&create("awake")).await.unwrap();
    let (status, out) = c
        .raw("GET", "/sandboxes?status=paused", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let page: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(page["total"], 0, "nothing pauses here yet: {page}");
    let (status, _) = c
        .raw("GET", "/sandboxes?status=dozing", None)
        .await
        .unwrap();
    assert_eq!(status, 422);
}
