//! islod's own SSH server: certificate authorities ([`ca`]) and connections to sandboxes
//! ([`server`]), carried over the `/sandboxes/{name}/ssh` WebSocket that `islo ssh proxy`
//! (OpenSSH's `ProxyCommand`) opens.

pub mod ca;
mod server;
mod session;
mod sftp;

use std::sync::Arc;
use std::time::Duration;

use russh::MethodKind;
use tokio::io::{AsyncRead, AsyncWrite};

pub use ca::{CaError, LazyCa, SshCa};

use crate::app::{App, Tenant};

/// Serve one SSH connection to `sandbox` over `stream` until the client leaves.
pub async fn serve(
    app: Arc<App>,
    ca: Arc<SshCa>,
    tenant: Tenant,
    sandbox: String,
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
) -> Result<(), String> {
    let host = format!("{sandbox}{}", ca::DOMAIN);
    let cert = ca.host_cert(&host).map_err(|e| e.to_string())?;
    let config = russh::server::Config {
        keys: vec![ca.host_key().clone()],
        certificates: vec![cert],
        methods: (&[MethodKind::PublicKey][..]).into(),
        auth_rejection_time: Duration::from_millis(200),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        nodelay: true,
        ..Default::default()
    };
    let conn = server::Conn {
        app,
        tenant,
        sandbox,
        ca,
        user: String::new(),
    };
    let running = russh::server::run_stream(Arc::new(config), stream, conn)
        .await
        .map_err(|e| e.to_string())?;
    running.await.map_err(|e| e.to_string())
}
