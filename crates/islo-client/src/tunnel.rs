//! Port-forward tunnels (`islo.tcp.v1`): one TCP connection to a port inside a sandbox.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::pty::Ws;
use crate::{Client, ClientError};

/// What arrives from the sandbox side.
#[derive(Debug, PartialEq, Eq)]
pub enum TunnelEvent {
    Data(Vec<u8>),
    /// The sandbox side finished sending (TCP half-close).
    Eof,
    /// The connection could not be made or broke (nothing listening, sandbox stopped).
    Error(String),
}

/// Sending half of a tunnel.
pub struct TunnelSender {
    sink: futures_util::stream::SplitSink<Ws, Message>,
}

impl TunnelSender {
    pub async fn send(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.sink
            .send(Message::Binary(data.to_vec().into()))
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// No more data from this side (TCP half-close).
    pub async fn eof(&mut self) -> Result<(), ClientError> {
        self.send(&[]).await
    }

    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
    }
}

/// Receiving half of a tunnel.
pub struct TunnelReceiver {
    stream: futures_util::stream::SplitStream<Ws>,
}

impl TunnelReceiver {
    /// The next event; `None` once the tunnel closed.
    pub async fn next(&mut self) -> Option<TunnelEvent> {
        loop {
            return Some(match self.stream.next().await? {
                Ok(Message::Binary(b)) if b.is_empty() => TunnelEvent::Eof,
                Ok(Message::Binary(b)) => TunnelEvent::Data(b.to_vec()),
                Ok(Message::Text(t)) => TunnelEvent::Error(
                    serde_json::from_str::<serde_json::Value>(&t)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_string))
                        .unwrap_or_else(|| t.to_string()),
                ),
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(e) => TunnelEvent::Error(e.to_string()),
            });
        }
    }
}

impl Client {
    /// Open a TCP connection to `port` on `sandbox`'s loopback.
    pub async fn port_forward(
        &self,
        sandbox: &str,
        port: u16,
    ) -> Result<(TunnelSender, TunnelReceiver), ClientError> {
        let path = format!(
            "/sandboxes/{}/port-forward?port={port}",
            crate::seg(sandbox)
        );
        self.tunnel(&path).await
    }

    /// A byte stream to `sandbox`'s SSH server (what `ProxyCommand` carries).
    pub async fn ssh_tunnel(
        &self,
        sandbox: &str,
    ) -> Result<(TunnelSender, TunnelReceiver), ClientError> {
        self.tunnel(&format!("/sandboxes/{}/ssh", crate::seg(sandbox)))
            .await
    }

    async fn tunnel(&self, path: &str) -> Result<(TunnelSender, TunnelReceiver), ClientError> {
        let ws = self.ws_connect(path, "islo.tcp.v1").await?;
        let (sink, stream) = ws.split();
        Ok((TunnelSender { sink }, TunnelReceiver { stream }))
    }

    /// Have islod sign `public_key` (OpenSSH format) into a user certificate.
    pub async fn ssh_certificate(
        &self,
        public_key: &str,
        ttl_seconds: Option<u64>,
    ) -> Result<islo_api::SshCertificateResponse, ClientError> {
        let req = islo_api::SshCertificateRequest {
            public_key: public_key.to_string(),
            ttl_seconds,
        };
        self.json(
            self.req(reqwest::Method::POST, "/ssh/certificates")
                .json(&req),
        )
        .await
    }
}
