//! The transparent listener: every TCP connection of every sandbox arrives here (nftables
//! redirects it); each is sniffed and served as TLS (terminated with the CA's leaf for its
//! SNI), plain HTTP (`CONNECT` included, whose tunnel is sniffed again) or reset.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;

use crate::ca::Ca;
use crate::io::Rewind;
use crate::limit::Limiter;
use crate::upstream::{UpstreamConfig, Upstreams};
use crate::{Control, Event, http};

/// How long a connection may stay silent before its first bytes.
pub(crate) const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections one sandbox may hold open through the gateway at once.
pub const MAX_CONNS_PER_SANDBOX: usize = 256;

/// Where the gateway listens and how it reaches out.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The transparent TCP listener (port 0: any free port).
    pub proxy_addr: SocketAddr,
    /// The DNS responder (UDP).
    pub dns_addr: SocketAddr,
    pub upstream: UpstreamConfig,
}

/// What every connection shares.
pub(crate) struct Shared {
    pub ca: Arc<Ca>,
    pub control: Arc<dyn Control>,
    pub upstreams: Upstreams,
    pub limiter: Limiter,
    pub conns: ConnLimits,
}

/// Open connections, per sandbox address and in all: each holds two of islod's descriptors
/// (the sandbox's and the upstream's), and islod's API needs some too.
pub(crate) struct ConnLimits {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    per_peer: usize,
    total: usize,
}

/// A connection's place; given back when dropped.
pub(crate) struct ConnSlot {
    sh: Arc<Shared>,
    peer: std::net::IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.sh.conns.open.lock()
            && let Some(n) = open.get_mut(&self.peer)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

impl ConnLimits {
    fn new(per_peer: usize) -> Self {
        // Half of what is left of the descriptor limit after a reserve for everything else.
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1 << 20);
        let total = (usize::try_from(soft)
            .unwrap_or(usize::MAX)
            .saturating_sub(512)
            / 2)
        .max(64);
        Self {
            open: std::sync::Mutex::new(std::collections::HashMap::new()),
            per_peer,
            total,
        }
    }

    /// A place for a connection from `peer`, unless it or the gateway is full.
    fn acquire(sh: &Arc<Shared>, peer: std::net::IpAddr) -> Result<ConnSlot, &'static str> {
        let Ok(mut open) = sh.conns.open.lock() else {
            return Err("the gateway is shutting down");
        };
        if open.values().sum::<usize>() >= sh.conns.total {
            return Err("the gateway holds as many connections as islod can");
        }
        let n = open.entry(peer).or_insert(0);
        if *n >= sh.conns.per_peer {
            return Err("this sandbox holds too many connections through the gateway");
        }
        *n += 1;
        Ok(ConnSlot {
            sh: sh.clone(),
            peer,
        })
    }
}

/// A running gateway; dropping it stops it.
pub struct Gateway {
    pub proxy_addr: SocketAddr,
    pub dns_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("proxy_addr", &self.proxy_addr)
            .field("dns_addr", &self.dns_addr)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Bind both listeners and serve.
    pub async fn start(
        cfg: GatewayConfig,
        ca: Arc<Ca>,
        control: Arc<dyn Control>,
    ) -> std::io::Result<Self> {
        let upstreams = Upstreams::new(&cfg.upstream).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(cfg.proxy_addr).await?;
        let udp = UdpSocket::bind(cfg.dns_addr).await?;
        let (proxy_addr, dns_addr) = (listener.local_addr()?, udp.local_addr()?);
        let shared = Arc::new(Shared {
            ca,
            control: control.clone(),
            upstreams,
            limiter: Limiter::default(),
            conns: ConnLimits::new(MAX_CONNS_PER_SANDBOX),
        });
        let tasks = vec![
            tokio::spawn(accept_loop(listener, shared.clone())),
            tokio::spawn(crate::dns::serve(udp, control)),
        ];
        Ok(Self {
            proxy_addr,
            dns_addr,
            shared,
            tasks,
        })
    }

    /// A sandbox is gone: drop its rate-limit windows.
    pub fn forget(&self, sandbox_id: &str) {
        self.shared.limiter.forget(sandbox_id);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => match ConnLimits::acquire(&sh, peer.ip()) {
                Ok(slot) => {
                    tokio::spawn(async move {
                        let sh = slot.sh.clone();
                        handle_conn(sock, peer, sh).await;
                        drop(slot);
                    });
                }
                Err(why) => {
                    record_refusal(&sh, peer, "", 0, why);
                    reset(sock);
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "gateway accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reset a TCP connection (RST, not FIN): what a refused raw flow gets.
fn reset(sock: TcpStream) {
    let _ = socket_linger_zero(&sock);
    drop(sock);
}

fn socket_linger_zero(sock: &TcpStream) -> std::io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::linger>())
        .map_err(std::io::Error::other)?;
    // SAFETY: the fd is a live socket; `l` is a valid linger struct of `len` bytes.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

async fn handle_conn(sock: TcpStream, peer: SocketAddr, sh: Arc<Shared>) {
    if sh.control.client(peer.ip()).is_none() {
        return reset(sock);
    }
    let orig = crate::sockopt::original_dst(&sock).ok();
    let _ = sock.set_nodelay(true);
    let port = orig.map_or(80, |a| a.port());
    let hint = orig.map(|a| a.ip().to_string());
    let mut first = [0u8; 16];
    let sniffed = tokio::time::timeout(SNIFF_TIMEOUT, sock.peek(&mut first)).await;
    let n = match sniffed {
        Ok(Ok(n)) if n > 0 => n,
        _ => return reset(sock),
    };
    match kind(&first[..n]) {
        Kind::Tls => serve_tls(sock, peer, port, hint, sh).await,
        Kind::Http => http::serve(sock, peer, http::Origin::Plain(hint), port, sh).await,
        Kind::Other => {
            record_reset(&sh, peer, hint.as_deref().unwrap_or(""), port);
            reset(sock);
        }
    }
}

enum Kind {
    Tls,
    Http,
    Other,
}

/// TLS starts with a handshake record (0x16); HTTP/1 with an upper-case method and a space.
fn kind(b: &[u8]) -> Kind {
    if b.first() == Some(&0x16) {
        return Kind::Tls;
    }
    let token = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
    if token > 0 && (b.get(token) == Some(&b' ') || token == b.len()) {
        Kind::Http
    } else {
        Kind::Other
    }
}

fn record_reset(sh: &Shared, peer: SocketAddr, host: &str, port: u16) {
    record_refusal(
        sh,
        peer,
        host,
        port,
        "neither HTTP nor TLS: the connection was reset",
    );
}

fn record_refusal(sh: &Shared, peer: SocketAddr, host: &str, port: u16, why: &str) {
    if let Some(c) = sh.control.client(peer.ip()) {
        sh.control.record(Event {
            sandbox_id: c.sandbox_id.clone(),
            tenant_id: c.tenant_id.clone(),
            at: std::time::SystemTime::now(),
            peer,
            scheme: "tcp",
            host: format!("{host}:{port}"),
            method: String::new(),
            path: String::new(),
            rule_id: None,
            action: islo_api::EventAction::Deny,
            status: 0,
            bytes_up: 0,
            bytes_down: 0,
            latency_ms: 0.0,
            reason: why.to_string(),
        });
    }
}

/// Sniff a tunnel opened with `CONNECT host:port` and serve it like a redirected connection.
pub(crate) async fn serve_tunnel<S>(
    mut io: S,
    peer: SocketAddr,
    host: String,
    port: u16,
    sh: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut first = vec![0u8; 16];
    let n = match tokio::time::timeout(SNIFF_TIMEOUT, io.read(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return,
    };
    first.truncate(n);
    let k = kind(&first);
    let io = Rewind::new(Bytes::from(first), io);
    match k {
        Kind::Tls => serve_tls(io, peer, port, Some(host), sh).await,
        Kind::Http => http::serve(io, peer, http::Origin::Plain(Some(host)), port, sh).await,
        Kind::Other => record_reset(&sh, peer, &host, port),
    }
}

/// A TLS flow: passed through undecrypted when its profile and host allow that (see
/// [`crate::splice`]), else terminated.
async fn serve_tls<S>(mut io: S, peer: SocketAddr, port: u16, hint: Option<String>, sh: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut read = Vec::new();
    if let Some(c) = sh.control.client(peer.ip())
        && c.policy.may_skip_inspection()
    {
        let hello = crate::splice::read_client_hello(&mut io).await;
        let host = hello.sni.clone().or_else(|| hint.clone());
        if hello.whole
            && let Some(host) = host
            && let Some(d) = crate::splice::decide(&c, &host)
        {
            let target = (host, port);
            return crate::splice::pass(io, hello.bytes, target, peer, c, d, sh).await;
        }
        read = hello.bytes;
    }
    terminate_tls(Rewind::new(Bytes::from(read), io), peer, port, hint, sh).await;
}

/// Terminate TLS with a leaf for the client's SNI (else `hint`), then serve HTTP inside.
async fn terminate_tls<S>(io: S, peer: SocketAddr, port: u16, hint: Option<String>, sh: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let Ok(Ok(start)) = tokio::time::timeout(SNIFF_TIMEOUT, acceptor).await else {
        return;
    };
    let sni = start
        .client_hello()
        .server_name()
        .map(str::to_string)
        .or(hint);
    let Some(host) = sni else { return };
    let cfg = match sh.ca.server_config(&host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(host = %host, error = %e, "no leaf certificate");
            return;
        }
    };
    match start.into_stream(cfg).await {
        Ok(tls) => http::serve(tls, peer, http::Origin::Tls(host), port, sh).await,
        Err(e) => tracing::debug!(host = %host, error = %e,
            ms = started.elapsed().as_secs_f64() * 1e3, "TLS handshake with a sandbox failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert!(matches!(kind(&[0x16, 3, 1]), Kind::Tls));
        assert!(matches!(kind(b"GET / HTTP/1.1"), Kind::Http));
        assert!(matches!(kind(b"CONNECT x:443 "), Kind::Http));
        assert!(matches!(kind(b"SSH-2.0-OpenSSH"), Kind::Other));
        assert!(matches!(kind(b"\x00\x01garbage"), Kind::Other));
        assert!(matches!(kind(b"get / "), Kind::Other));
    }
}
