//! Re-originating a request: resolve the host the sandbox named (never the address it
//! dialled), refuse addresses a sandbox must not reach, connect, verify the upstream's
//! certificate against the system's roots (plus configured extra roots), speak HTTP/1.1.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a name is sent instead of where DNS says: an address, and maybe another port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTarget {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl std::str::FromStr for HostTarget {
    type Err = String;

    /// `IP` or `IP:PORT` (`[v6]:PORT`).
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self { ip, port: None });
        }
        s.parse::<SocketAddr>()
            .map(|a| Self {
                ip: a.ip(),
                port: Some(a.port()),
            })
            .map_err(|_| format!("{s:?} is neither IP nor IP:PORT"))
    }
}

/// Settings of the way out.
#[derive(Debug, Clone, Default)]
pub struct UpstreamConfig {
    /// Names resolved here instead of by DNS (like curl's `--resolve`); these addresses are
    /// trusted even when private (an operator's choice, e.g. tests on loopback).
    pub hosts: HashMap<String, HostTarget>,
    /// Certificates trusted for upstreams besides the system's roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Let DNS answers point at private, loopback and link-local addresses (default: no).
    pub allow_private: bool,
}

/// Why an upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot resolve {host}: {detail}")]
    Resolve { host: String, detail: String },
    #[error("{host} resolves to {ip}, an address sandboxes may not reach")]
    Blocked { host: String, ip: IpAddr },
    #[error("connecting to {host} ({addr}): {source}")]
    Connect {
        host: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS with {host}: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("HTTP with {host}: {source}")]
    Http { host: String, source: hyper::Error },
}

/// Where requests go out.
pub struct Upstreams {
    hosts: HashMap<String, HostTarget>,
    allow_private: bool,
    tls: TlsConnector,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").finish_non_exhaustive()
    }
}

/// Whether a sandbox may reach `ip` through the gateway: anything but loopback, private,
/// link-local (metadata), carrier-grade NAT, multicast and reserved addresses. (The
/// documentation ranges stay reachable: some networks serve package mirrors from them.)
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // Global unicast (2000::/3) only; not documentation (2001:db8::/32).
            (s[0] & 0xe000) == 0x2000 && !(s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// Whether `ip` is one of this host's own addresses, whatever its range: a host service
/// listening on all addresses answers there. (Binding to it succeeds only if it is local.)
pub fn is_host_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_unspecified()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, carrier-grade NAT
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15, benchmarking
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)) // 192.0.0/24, protocol assignments
}

impl Upstreams {
    pub fn new(cfg: &UpstreamConfig) -> Result<Self, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        for c in &cfg.extra_roots {
            roots.add(c.clone())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            hosts: cfg
                .hosts
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), *v))
                .collect(),
            allow_private: cfg.allow_private,
            tls: TlsConnector::from(Arc::new(tls)),
        })
    }

    /// The address to dial for `host:port`.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, UpstreamError> {
        if let Some(t) = self.hosts.get(&host.to_ascii_lowercase()) {
            return Ok(SocketAddr::new(t.ip, t.port.unwrap_or(port)));
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| UpstreamError::Resolve {
                host: host.into(),
                detail: e.to_string(),
            })?
            .collect();
        // IPv4 first; any blocked answer blocks the name (no picking around a rebinding).
        let mut sorted = found.clone();
        sorted.sort_by_key(|a| !a.is_ipv4());
        let blocked = |ip: IpAddr| is_host_address(ip) || (!self.allow_private && !is_public(ip));
        if let Some(bad) = found.iter().find(|a| blocked(a.ip())) {
            return Err(UpstreamError::Blocked {
                host: host.into(),
                ip: bad.ip(),
            });
        }
        sorted
            .first()
            .copied()
            .ok_or_else(|| UpstreamError::Resolve {
                host: host.into(),
                detail: "no addresses".into(),
            })
    }

    /// A TCP connection to `host:port` at the address [`Upstreams::resolve`] gives.
    pub async fn connect_tcp(&self, host: &str, port: u16) -> Result<TcpStream, UpstreamError> {
        let addr = self.resolve(host, port).await?;
        let connect_err = |source| UpstreamError::Connect {
            host: host.into(),
            addr,
            source,
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect_err)?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// An HTTP/1.1 connection to `host:port`, over TLS when `tls`.
    pub async fn connect<B>(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<SendRequest<B>, UpstreamError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tcp = self.connect_tcp(host, port).await?;
        let http_err = |source| UpstreamError::Http {
            host: host.into(),
            source,
        };
        if !tls {
            let (send, conn) = http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(http_err)?;
            tokio::spawn(conn);
            return Ok(send);
        }
        let name = ServerName::try_from(host.to_string()).map_err(|e| UpstreamError::Tls {
            host: host.into(),
            source: std::io::Error::other(e),
        })?;
        let stream = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|source| UpstreamError::Tls {
                host: host.into(),
                source,
            })?;
        let (send, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_err)?;
        tokio::spawn(conn);
        Ok(send)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_public_unicast_is_reachable() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in ["1.1.1.1", "151.101.0.1", "2606:4700::1111"] {
            assert!(is_public(good.parse().unwrap()), "{good}");
        }
        assert!(is_host_address("127.0.0.1".parse().unwrap()));
        assert!(!is_host_address("1.1.1.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn overrides_and_blocked_names() {
        let mut cfg = UpstreamConfig::default();
        cfg.hosts
            .insert("Up.Test".into(), "127.0.0.1".parse().unwrap());
        cfg.hosts
            .insert("api.test".into(), "127.0.0.1:9443".parse().unwrap());
        let u = Upstreams::new(&cfg).unwrap();
        assert_eq!(
            u.resolve("up.test", 8443).await.unwrap(),
            "127.0.0.1:8443".parse().unwrap()
        );
        assert_eq!(
            u.resolve("api.test", 443).await.unwrap(),
            "127.0.0.1:9443".parse().unwrap()
        );
        assert!("nonsense".parse::<HostTarget>().is_err());
        // "localhost" resolves to loopback: refused.
        assert!(matches!(
            u.resolve("localhost", 80).await,
            Err(UpstreamError::Blocked { .. })
        ));
        assert!(matches!(
            u.resolve("169.254.169.254", 80).await,
            Err(UpstreamError::Blocked { .. })
        ));
    }
}
