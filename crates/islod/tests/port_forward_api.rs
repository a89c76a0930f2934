//! The port-forward WebSocket over the fake back end: refusals before the upgrade carry API
//! errors; a connection the sandbox side cannot make is reported on the socket.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_client::TunnelEvent;

#[tokio::test]
async fn port_forward_refusals_are_clear() {
    let s = server().await;
    let a = s.client("alpha");
    a.create_sandbox(&create("pf")).await.unwrap();

    let (_tx, mut rx) = a.port_forward("pf", 8080).await.unwrap();
    match rx.next().await {
        Some(TunnelEvent::Error(m)) => assert!(m.contains("no network"), "{m}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(rx.next().await, None, "then the tunnel closes");

    let e = a.port_forward("pf", 0).await.err().unwrap();
    assert!(matches!(&e, ClientError::Api { status: 422, .. }), "{e}");
    let e = a.port_forward("ghost", 80).await.err().unwrap();
    assert_eq!(code(e), ErrorCode::SandboxNotFound);
    let e = s.client("beta").port_forward("pf", 80).await.err().unwrap();
    assert_eq!(
        code(e),
        ErrorCode::SandboxNotFound,
        "other tenants cannot reach it"
    );
    a.stop_sandbox("pf").await.unwrap();
    let e = a.port_forward("pf", 80).await.err().unwrap();
    assert_eq!(code(e), ErrorCode::SandboxInvalidState);
}
