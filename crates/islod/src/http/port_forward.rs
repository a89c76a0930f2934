//! `GET /sandboxes/{name}/port-forward?port=N`: one TCP connection to a port on the sandbox's
//! loopback, carried over a WebSocket (subprotocol `islo.tcp.v1`).
//!
//! Binary messages carry bytes; an empty binary message ends that direction (TCP half-close);
//! a text message from the server is a JSON `{"error": …}` (nothing listening, sandbox
//! stopped) and is followed by the close.

use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::HttpState;
use super::error::ApiError;
use crate::app::{AppError, Tenant};

/// The WebSocket subprotocol of a forwarded connection.
pub const SUBPROTOCOL: &str = "islo.tcp.v1";

/// The port to reach.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortQuery {
    /// TCP port on the sandbox's loopback (1–65535).
    pub port: u32,
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/port-forward", params(PortQuery),
    responses((status = 101, description = "WebSocket: one TCP connection (protocol islo.tcp.v1)"),
              (status = 404, body = islo_api::ErrorResponse), (status = 409, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn forward(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    Query(q): Query<PortQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let port = u16::try_from(q.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| AppError::Validation(format!("port must be 1-65535, got {}", q.port)))?;
    let row = s.app.awake(&t, &name).await?;
    Ok(ws
        .protocols([SUBPROTOCOL])
        .on_upgrade(move |socket| async move {
            // The connection keeps the sandbox active (lifecycle policies) while it is open.
            let _busy = s.app.busy(&row.id);
            match s.app.connect_port(&t, &name, port).await {
                Ok(agent) => carry(socket, agent).await,
                Err(e) => refuse(socket, e.to_string()).await,
            }
        }))
}

async fn refuse(mut ws: WebSocket, message: String) {
    let body = serde_json::json!({ "error": message }).to_string();
    let _ = ws.send(Message::Text(body.into())).await;
    let _ = ws.send(Message::Close(None)).await;
}

/// Carry bytes between a WebSocket (`islo.tcp.v1`) and `stream`, each direction until its
/// end of stream (an empty binary message from the client is a TCP half-close).
pub async fn carry(ws: WebSocket, stream: impl AsyncRead + AsyncWrite + Send + 'static) {
    let (mut sr, mut sw) = tokio::io::split(stream);
    let (mut tx, mut rx) = ws.split();
    let to_client = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sr.read(&mut buf).await.unwrap_or(0);
            let msg = Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]));
            if tx.send(msg).await.is_err() || n == 0 {
                break;
            }
        }
        tx
    };
    let from_client = async move {
        while let Some(Ok(msg)) = rx.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            // Empty: the client's end of stream (a half-close), not the end of the bridge.
            if data.is_empty() {
                let _ = sw.shutdown().await;
            } else if sw.write_all(&data).await.is_err() {
                break;
            }
        }
        // The client is gone or closed: end the other side too.
        let _ = sw.shutdown().await;
    };
    let (mut tx, ()) = tokio::join!(to_client, from_client);
    let _ = tx.send(Message::Close(None)).await;
}
