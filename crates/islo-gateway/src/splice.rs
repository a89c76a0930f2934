//! TLS flows passed through undecrypted, for profiles with `tls_inspection: when_needed`.
//!
//! The client's first handshake message is read (and kept) far enough to learn its SNI. When
//! the host's decision needs nothing else ([`crate::Policy::decide_uninspected`], and no
//! secret of the tenant goes to that host), a denied flow is closed and an allowed one is
//! connected to the host's address as the gateway resolves it (the sandbox never picks the
//! address) and spliced: the kept bytes first, then both ways until either side closes. The
//! sandbox checks the upstream's certificate itself. One decision is logged per flow, with
//! its bytes and the time to reach the upstream, and says it was not inspected.
//!
//! What differs from inspection: the decision is the SNI's. A server that answers for many
//! names on one address could be asked for another name inside the encrypted flow; profiles
//! that must rule that out keep `always`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::io::Rewind;
use crate::proxy::Shared;
use crate::{Client, Decision, Event};
use islo_api::EventAction;

/// A ClientHello larger than this is not waited for (it is inspected instead).
const MAX_HELLO: usize = 64 * 1024;

/// Buffer for each direction of a spliced flow.
const SPLICE_BUF: usize = 64 * 1024;

/// What was read of a TLS client's first flight.
pub(crate) struct Hello {
    /// Every byte read, to pass on (or to hand to the TLS terminator).
    pub bytes: Vec<u8>,
    /// The SNI, when the ClientHello was read whole and names one.
    pub sni: Option<String>,
    /// Whether the ClientHello was read whole.
    pub whole: bool,
}

/// Read until the client's ClientHello is whole (or it is not one, or too big, or silent).
pub(crate) async fn read_client_hello<S: AsyncRead + Unpin>(io: &mut S) -> Hello {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut hello = Hello {
        bytes: Vec::new(),
        sni: None,
        whole: false,
    };
    let mut buf = vec![0u8; 8192];
    while hello.bytes.len() < MAX_HELLO {
        let n = match tokio::time::timeout(crate::proxy::SNIFF_TIMEOUT, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return hello,
        };
        hello.bytes.extend_from_slice(&buf[..n]);
        let mut rd = &buf[..n];
        while !rd.is_empty() {
            if acceptor.read_tls(&mut rd).is_err() {
                return hello;
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                hello.sni = accepted.client_hello().server_name().map(str::to_string);
                hello.whole = true;
                return hello;
            }
            Ok(None) => {}
            Err(_) => return hello,
        }
    }
    hello
}

/// The decision on a flow to `host` without inspecting it, if one can be taken.
pub(crate) fn decide(c: &Client, host: &str) -> Option<Decision> {
    if c.secret_routes.iter().any(|r| r.matches(host)) {
        return None;
    }
    c.policy.decide_uninspected(host)
}

/// The flow's entry in the decision log.
fn event(c: &Client, peer: SocketAddr, host: &str, d: &Decision) -> Event {
    Event {
        sandbox_id: c.sandbox_id.clone(),
        tenant_id: c.tenant_id.clone(),
        at: SystemTime::now(),
        peer,
        scheme: "https",
        host: host.to_string(),
        method: String::new(),
        path: String::new(),
        rule_id: d.rule_id.clone(),
        action: if d.allowed {
            EventAction::Allow
        } else {
            EventAction::Deny
        },
        status: 0,
        bytes_up: 0,
        bytes_down: 0,
        latency_ms: 0.0,
        reason: format!("{} (TLS not inspected: decided on its SNI)", d.reason),
    }
}

/// Carry out `d` on the flow: close it, or splice it to `host:port`.
pub(crate) async fn pass<S>(
    mut io: S,
    hello: Vec<u8>,
    (host, port): (String, u16),
    peer: SocketAddr,
    c: Arc<Client>,
    d: Decision,
    sh: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let mut ev = event(&c, peer, &host, &d);
    if !d.allowed {
        let _ = io.shutdown().await;
        return sh.control.record(ev);
    }
    let up = match sh.upstreams.connect_tcp(&host, port).await {
        Ok(up) => up,
        Err(e) => {
            ev.action = EventAction::Error;
            ev.reason = format!("upstream failed: {e}; {}", ev.reason);
            let _ = io.shutdown().await;
            return sh.control.record(ev);
        }
    };
    ev.latency_ms = started.elapsed().as_secs_f64() * 1e3;
    // Counted as read, so a flow that ends in a reset still logs what passed.
    let (mut io, mut up) = (Rewind::new(Bytes::new(), io), Rewind::new(Bytes::new(), up));
    if up.write_all(&hello).await.is_ok() {
        let _ = tokio::io::copy_bidirectional_with_sizes(&mut io, &mut up, SPLICE_BUF, SPLICE_BUF)
            .await;
    }
    ev.bytes_up = hello.len() as u64 + io.read();
    ev.bytes_down = up.read();
    sh.control.record(ev);
}
