//! Every path the client calls is one `openapi.json` describes (the document islod's route
//! table makes, so also one the server routes). A path is a string literal of the client's
//! source that starts with `/`; `{…}` placeholders and parameters match any one segment.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;

/// The string literals of `src` that start with `/`, without any query.
fn client_paths(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("\"/") {
        let lit = &rest[i + 1..];
        let end = lit.find('"').unwrap();
        let path = lit[..end].split('?').next().unwrap();
        if path.len() > 1 && !path.contains(' ') {
            out.push(path.to_string());
        }
        rest = &lit[end + 1..];
    }
    out
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| if s.starts_with('{') { "*" } else { s })
        .collect()
}

fn matches(client: &str, documented: &str) -> bool {
    let (c, d) = (segments(client), segments(documented));
    c.len() == d.len()
        && c.iter()
            .zip(&d)
            .all(|(a, b)| a == b || *a == "*" || *b == "*")
}

#[test]
fn every_client_path_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("../../openapi.json")).unwrap()).unwrap();
    let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let file = entry.unwrap().path();
        let src = std::fs::read_to_string(&file).unwrap();
        for p in client_paths(&src) {
            assert!(
                documented.iter().any(|d| matches(&p, d)),
                "{}: the client calls {p}, which openapi.json does not describe",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 30,
        "only {checked} paths found: is the scan still right?"
    );
}

#[test]
fn the_matcher_is_strict_about_fixed_segments() {
    assert!(matches(
        "/sandboxes/{}/exec",
        "/sandboxes/{sandbox_name}/exec"
    ));
    assert!(matches(
        "/sandboxes/{}/{kind}",
        "/sandboxes/{sandbox_name}/files"
    ));
    assert!(!matches(
        "/sandboxes/{}/exec",
        "/sandboxes/{sandbox_name}/stop"
    ));
    assert!(!matches("/sandboxes/{}", "/sandboxes/{sandbox_name}/stop"));
    assert_eq!(
        client_paths(r#"format!("/a/{}/b?port={port}", x); "/"; "/c""#),
        ["/a/{}/b", "/c"]
    );
}
