//! Authentication and tenancy through the real CLI against islod on TCP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use std::net::TcpListener;

use common::{Env, stderr, stdout};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn key(env: &Env, tenant: &str) -> String {
    let islod = std::path::Path::new(env!("CARGO_BIN_EXE_islo")).with_file_name("islod");
    let o = std::process::Command::new(islod)
        .arg("--state-dir")
        .arg(env.state())
        .args(["keys", "create", "test", "--tenant", tenant])
        .env("ISLOD_CONFIG", env.dir.path().join("islod.yaml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

#[test]
fn bad_key_is_exit_1_and_tenants_do_not_see_each_other() {
    let port = free_port();
    let local = Env::with_config(&format!("listen: 127.0.0.1:{port}\n"));
    local.ok(&["ls"]); // starts islod (unix + TCP)
    let (ka, kb) = (key(&local, "alpha"), key(&local, "beta"));
    let url = format!("http://127.0.0.1:{port}");
    let as_tenant = |k: &str, args: &[&str]| {
        let mut c = local.islo_cmd();
        c.env("ISLO_BASE_URL", &url)
            .env("ISLO_API_KEY", k)
            .args(args);
        c.output().unwrap()
    };

    let o = as_tenant("islo_key_wrong", &["ls"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("Authentication required"));
    let mut c = local.islo_cmd();
    let o = c.env("ISLO_BASE_URL", &url).args(["ls"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "no key over TCP: {}", stderr(&o));

    let bb = local.busybox();
    let o = as_tenant(
        &ka,
        &["use", "shared-name", "-i", &bb, "--", "echo", "alpha"],
    );
    assert_eq!(stdout(&o), "alpha\n", "{}", stderr(&o));
    assert!(!stdout(&as_tenant(&kb, &["ls"])).contains("shared-name"));
    assert_eq!(
        as_tenant(&kb, &["status", "shared-name"]).status.code(),
        Some(3),
        "404, not 403"
    );
    assert_eq!(
        as_tenant(&kb, &["rm", "shared-name", "-f"]).status.code(),
        Some(3)
    );
    // Beta may use the same name for its own sandbox.
    let o = as_tenant(
        &kb,
        &["use", "shared-name", "-i", &bb, "--", "echo", "beta"],
    );
    assert_eq!(stdout(&o), "beta\n", "{}", stderr(&o));
    assert_eq!(
        stdout(&as_tenant(
            &ka,
            &["use", "shared-name", "--", "echo", "still-alpha"]
        )),
        "still-alpha\n"
    );
    // `islo login --api-key` stores the key (0600) and the CLI uses it.
    let mut c = local.islo_cmd();
    let o = c.args(["login", "--api-key", &ka]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let cred = local.dir.path().join(".config/islo/credentials");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut c = local.islo_cmd();
    let o = c.env("ISLO_BASE_URL", &url).args(["ls"]).output().unwrap();
    assert!(stdout(&o).contains("shared-name"), "{}", stderr(&o));
    for k in [&ka, &kb] {
        let _ = as_tenant(k, &["rm", "shared-name", "-f"]);
    }
}
