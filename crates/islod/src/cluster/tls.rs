//! Node-to-node TLS: every node holds a certificate of the cluster's authority, presents it
//! when it carries a request to another node, and accepts on its node listener only peers
//! that present one too (mutual TLS). The peer's certificate is the whole credential: a node
//! listener trusts the tenant a peer names because only a node can have connected.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;

/// The two sides of this node's identity.
pub struct NodeTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

fn read(what: &str, p: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cluster.tls.{what}: reading {}", p.display()))
}

impl NodeTls {
    /// Load `cluster.tls`.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&read("ca", &files.ca)?) {
            roots
                .add(c.context("cluster.tls.ca: not a PEM certificate")?)
                .context("cluster.tls.ca")?;
        }
        let roots = Arc::new(roots);
        let chain = CertificateDer::pem_slice_iter(&read("cert", &files.cert)?)
            .collect::<Result<Vec<_>, _>>()
            .context("cluster.tls.cert: not PEM certificates")?;
        let key_pem = read("key", &files.key)?;
        let key =
            || PrivateKeyDer::from_pem_slice(&key_pem).context("cluster.tls.key: no key in it");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .context("cluster.tls.ca: cannot verify clients with it")?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("node TLS versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key()?)
            .context("cluster.tls: the certificate and key do not match")?;
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("node TLS versions")?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key()?)
            .context("cluster.tls: the certificate and key do not match")?;
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// ring's suites with AES-128-GCM first: node-to-node traffic carries whole uploads, and it
/// is the cheapest of TLS 1.3's suites here (both sides follow the client's order).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

/// The node listener: TCP connections that completed a mutual TLS handshake (handshakes run
/// apart, so a slow or failing peer holds up no other).
pub struct NodeListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl NodeListener {
    pub async fn bind(addr: &str, tls: Arc<rustls::ServerConfig>) -> anyhow::Result<Self> {
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cluster node listener on {addr}"))?;
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            loop {
                let Ok((s, peer)) = tcp.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let _ = s.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(s),
                    );
                    match hs.await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "node connection refused (TLS)");
                        }
                        Err(_) => tracing::warn!(%peer, "node TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for NodeListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// How this node opens connections to the others.
#[derive(Clone)]
pub struct PeerTls {
    pub client: Arc<rustls::ClientConfig>,
    /// The name peers' certificates are checked for (else the host they are reached at).
    pub peer_name: Option<String>,
}

/// Open a mutually authenticated connection to the node at `advertise` (`https://host:port`).
pub async fn connect(
    advertise: &str,
    tls: PeerTls,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let hostport = advertise
        .strip_prefix("https://")
        .ok_or_else(|| bad(format!("{advertise} is not https://")))?
        .trim_end_matches('/');
    let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
    let host = tls
        .peer_name
        .clone()
        .unwrap_or_else(|| host.trim_matches(['[', ']']).to_string());
    let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| bad(e.to_string()))?;
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        TcpStream::connect(hostport),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{hostport}: no answer in 3 s"),
        )
    })??;
    let _ = tcp.set_nodelay(true);
    tokio_rustls::TlsConnector::from(tls.client)
        .connect(name, tcp)
        .await
}
