//! The loopback test registry started by `scripts/test-env.sh`.

use std::net::TcpStream;
use std::time::Duration;

/// `host:port` of the test registry (`ISLO_TEST_REGISTRY`, default `127.0.0.1:5050`).
pub fn addr() -> String {
    std::env::var("ISLO_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5050".into())
}

/// The registry's address; panics with the fix when nothing listens there.
pub fn require() -> String {
    let a = addr();
    let up = a
        .parse()
        .ok()
        .is_some_and(|sock| TcpStream::connect_timeout(&sock, Duration::from_secs(2)).is_ok());
    assert!(
        up,
        "test registry not reachable at {a}: run scripts/test-env.sh first"
    );
    a
}
