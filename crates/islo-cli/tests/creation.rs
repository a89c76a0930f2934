//! A creation's progress and create-time switches through the real runtime: the events
//! stream (`GET /sandboxes/{name}/events`) in order and to its end, a setup step as a phase,
//! and `internet_enabled: false` cutting one sandbox off whatever its profile allows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::gateway::{curl, with_upstream};
use common::{Env, stderr, stdout};

const ORDER: [&str; 7] = [
    "image_pull",
    "disk",
    "network",
    "sources",
    "setup",
    "ready",
    "failed",
];

/// The phases of an SSE body, in order.
fn phases(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["phase"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn in_order(seen: &[String]) {
    let rank = |p: &String| ORDER.iter().position(|o| o == p).unwrap();
    assert!(
        seen.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
        "{seen:?}"
    );
}

#[test]
fn the_events_follow_a_creation_to_its_end() {
    let env = Env::new();
    let debian = env.debian();
    let body = serde_json::json!({"name": "ev", "image": debian,
        "setup_scripts": [{"name": "slow", "script": "sleep 2; echo done"}]});
    // Follow the creation from another client while it is made.
    let follower = {
        let env_pairs = env.env_pairs();
        std::thread::spawn(move || {
            let islo = env!("CARGO_BIN_EXE_islo");
            for _ in 0..400 {
                let o = std::process::Command::new(islo)
                    .envs(env_pairs.clone())
                    .args(["api", "/sandboxes/ev/events"])
                    .output()
                    .unwrap();
                if o.status.success() {
                    return String::from_utf8_lossy(&o.stdout).into_owned();
                }
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            panic!("the sandbox never appeared");
        })
    };
    let o = env.islo(&["api", "/sandboxes", "-d", &body.to_string()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let seen = phases(&follower.join().unwrap());
    in_order(&seen);
    assert_eq!(seen.last().map(String::as_str), Some("ready"), "{seen:?}");
    // Setup runs after the create answers: a stream opened now sees it, then ready.
    let o = env.islo(&[
        "api",
        "/sandboxes",
        "-d",
        &serde_json::json!({"name": "ev2", "image": env.busybox(),
            "setup_scripts": [{"name": "slow", "script": "sleep 2"}]})
        .to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let later = phases(&env.ok(&["api", "/sandboxes/ev2/events"]));
    assert_eq!(later, ["setup", "ready"]);
    let got: serde_json::Value = serde_json::from_str(&env.ok(&["api", "/sandboxes/ev2"])).unwrap();
    assert_eq!(got["creation_phase"], "ready");
}

#[test]
fn internet_enabled_false_cuts_one_sandbox_off() {
    let (env, up, _certs) = with_upstream();
    let url = format!("http://up.test:{}/echo/x", up.http);
    let make = |name: &str, internet: bool| {
        let body =
            serde_json::json!({"name": name, "image": env.debian(), "internet_enabled": internet});
        let o = env.islo(&["api", "/sandboxes", "-d", &body.to_string()]);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    make("on", true);
    make("off", false);
    assert_eq!(curl(&env, "on", &[&url]).0, 200);
    let (code, body) = curl(&env, "off", &[&url]);
    assert_eq!(code, 403, "{body}");
}
