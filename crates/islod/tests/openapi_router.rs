//! `openapi.json` against the running router: every documented path and method is served
//! (without credentials a protected one answers the documented 401, not the 404 of an unknown
//! path or the 405 of an unknown method), every `{x}` is a declared path parameter, every other
//! parameter is in the query, and every operation documents the errors the shared layers give.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;

#[tokio::test]
async fn every_documented_operation_is_routed_and_declared() {
    let s = server().await;
    let doc: serde_json::Value = serde_json::from_str(&islod::http::openapi::document()).unwrap();
    let anon = Client::new(Endpoint::Http(s.tcp.clone()), None).unwrap();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut url = path.clone();
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{method} {path}: {name} is not a declared path parameter"
                );
                url = url.replace(seg, "1");
            }
            for p in &params {
                let name = p["name"].as_str().unwrap();
                if p["in"] == "path" {
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: {name}"
                    );
                }
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path}");
            let public = path == "/auth/token" || path == "/openapi.json";
            let (status, _) = anon.raw(method, &url, None).await.unwrap();
            if public {
                assert!(![404, 405].contains(&status), "{method} {path}: {status}");
            } else {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents 401"
                );
                assert_eq!(status, 401, "{method} {path} is routed");
            }
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked} operations");
}
