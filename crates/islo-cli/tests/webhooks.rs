//! Incoming webhooks end to end: a GitHub-style signed push creates the sandbox its body names
//! and is forwarded, whole, to a port inside once the server there is up (the first tries
//! fail and are retried); a replay is acknowledged and not acted on again; a forged signature
//! is 401 and recorded as failed; an oversized body is 413; unknown webhooks are 404.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{Env, stderr};
use sha2::{Digest, Sha256};

const SECRET: &str = "gh-hook-secret";

/// Started by the sandbox's setup (so it comes up after the first delivery attempts): writes
/// each request it gets to /tmp/got.json.
const SINK: &str = r#"cat > /tmp/sink.py <<'PY'
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0))).decode()
        rec = {"path": self.path, "method": "POST", "body": body,
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        open('/tmp/got.json', 'a').write(json.dumps(rec) + "\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.HTTPServer(('127.0.0.1', 8080), H).serve_forever()
PY
sleep 3
nohup python3 /tmp/sink.py >/dev/null 2>&1 &"#;

fn hmac(key: &[u8], data: &[u8]) -> String {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    hex::encode(
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize(),
    )
}

fn post(port: u16, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

fn deliveries(env: &Env, id: &str) -> Vec<serde_json::Value> {
    let out = env.ok(&["webhook", "incoming", "deliveries", id, "-o", "json"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_signed_push_makes_the_sandbox_and_reaches_its_port() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::with_config(&format!("listen: 127.0.0.1:{port}\n"));
    let request = serde_json::json!({
        "name": "github-push",
        "auth": {"auth_type": "hmac", "algorithm": "sha256", "encoding": "hex", "prefix": "sha256=",
                 "secret": {"name": "gh", "value": SECRET},
                 "signature": {"source": "header", "name": "X-Hub-Signature-256"},
                 "signed_payload": {"type": "raw_body"}},
        "idempotency": {"source": "header", "name": "X-GitHub-Delivery"},
        "target": {"target_type": "sandbox_name_from_event",
                   "source": {"source": "json_path", "path": "$.repository.name"},
                   "required_prefix": "demo-"},
        "rules": [{"when": {"json_path": "$.ref", "equals": "refs/heads/main"},
                   "actions": [
            {"action_type": "ensure_sandbox", "template": {"image": env.debian(), "vcpus": 1,
                "memory_mb": 512, "disk_gb": 1, "setup_scripts": [{"name": "sink", "script": SINK}]}},
            {"action_type": "deliver_to_port", "port": 8080, "path": "/hook"}]}]
    });
    let file = env.dir.path().join("hook.json");
    std::fs::write(&file, request.to_string()).unwrap();
    let made: serde_json::Value = serde_json::from_str(&env.ok(&[
        "webhook",
        "incoming",
        "create",
        "--name",
        "x",
        "--request-json",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]))
    .unwrap();
    let id = made["id"].as_str().unwrap().to_string();
    let shown = made.to_string();
    assert!(
        !shown.contains(SECRET) && shown.contains("secret_redacted"),
        "{shown}"
    );
    let path = format!("/hooks/{id}");
    assert!(made["receiver_url"].as_str().unwrap().ends_with(&path));

    let body = br#"{"ref":"refs/heads/main","repository":{"name":"demo-repo"},"after":"abc123"}"#;
    let sig = format!("sha256={}", hmac(SECRET.as_bytes(), body));
    let headers = |delivery: &str, sig: &str| {
        vec![
            ("X-GitHub-Event", "push".to_string()),
            ("X-GitHub-Delivery", delivery.to_string()),
            ("X-Hub-Signature-256", sig.to_string()),
            ("Content-Type", "application/json".to_string()),
        ]
    };
    let (status, out) = post(port, &path, &headers("d-1", &sig), body);
    assert_eq!(status, 202, "{out}");

    // Retried until the server inside is up, then delivered.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let all = deliveries(&env, &id);
        if let Some(d) = all.iter().find(|d| d["status"] == "delivered") {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "not delivered: {all:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        done["attempts"].as_u64().unwrap() >= 2,
        "the first attempts found no server: {done}"
    );
    let got = env.ok(&["use", "demo-repo", "--", "cat", "/tmp/got.json"]);
    let rec: serde_json::Value = serde_json::from_str(got.lines().next().unwrap()).unwrap();
    assert_eq!(rec["path"], "/hook");
    assert_eq!(rec["body"], std::str::from_utf8(body).unwrap());
    assert_eq!(rec["headers"]["x-hub-signature-256"], sig.as_str());
    let detail = env.ok(&[
        "webhook",
        "incoming",
        "delivery",
        &id,
        done["event_id"].as_str().unwrap(),
    ]);
    assert!(
        detail.contains("\"resolved_sandbox_name\": \"demo-repo\""),
        "{detail}"
    );
    assert!(detail.contains("deliver_to_port"), "{detail}");

    // A replay is acknowledged, not acted on again.
    let (status, out) = post(port, &path, &headers("d-1", &sig), body);
    assert_eq!(status, 200, "{out}");
    assert!(out.contains("\"duplicate\":true"), "{out}");
    std::thread::sleep(Duration::from_secs(2));
    let got = env.ok(&["use", "demo-repo", "--", "cat", "/tmp/got.json"]);
    assert_eq!(got.lines().count(), 1, "{got}");

    // A forged signature: 401, and a failed delivery saying why.
    let forged = format!("sha256={}", hmac(b"wrong", body));
    let (status, _) = post(port, &path, &headers("d-2", &forged), body);
    assert_eq!(status, 401);
    let failed: Vec<_> = deliveries(&env, &id)
        .into_iter()
        .filter(|d| d["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );

    // A name outside the target's constraints, an oversized body, an unknown webhook.
    let other = br#"{"ref":"refs/heads/main","repository":{"name":"prod-db"}}"#;
    let (status, out) = post(
        port,
        &path,
        &headers("d-3", &format!("sha256={}", hmac(SECRET.as_bytes(), other))),
        other,
    );
    assert_eq!(status, 400, "{out}");
    assert!(out.contains("prefix"), "{out}");
    let big = vec![b'x'; (1 << 20) + 1];
    let (status, _) = post(port, &path, &headers("d-4", &sig), &big);
    assert_eq!(status, 413);
    let (status, _) = post(port, "/hooks/wh_nope", &headers("d-5", &sig), body);
    assert_eq!(status, 404);
    let o = env.islo(&["webhook", "incoming", "rm", &id]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    env.ok(&["webhook", "incoming", "rm", &id, "--force"]);
    assert_eq!(post(port, &path, &headers("d-6", &sig), body).0, 404);
}
