//! Terminal WebSockets (`islo.pty.v1`, see `islo_api::session`): exec on a terminal and
//! session attach.

use futures_util::{SinkExt, StreamExt};
use islo_api::{ErrorCode, ErrorResponse, PtyFrame, PtyOpen};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{Client, ClientError, Endpoint};

/// Any byte stream the WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open terminal.
pub struct PtyConn {
    ws: WebSocketStream<Box<dyn Io>>,
}

impl PtyConn {
    /// Independent halves, so that sending (which may wait for the peer to read) never keeps
    /// the caller from reading: a terminal must always drain output.
    pub fn split(self) -> (PtySender, PtyReceiver) {
        let (sink, stream) = self.ws.split();
        (PtySender { sink }, PtyReceiver { stream })
    }
}

pub(crate) type Ws = WebSocketStream<Box<dyn Io>>;

/// The sending half of a terminal.
pub struct PtySender {
    sink: futures_util::stream::SplitSink<Ws, Message>,
}

impl PtySender {
    pub async fn send(&mut self, f: PtyFrame) -> Result<(), ClientError> {
        self.sink
            .send(Message::Binary(f.encode().into()))
            .await
            .map_err(|e| ClientError::interrupted(&e))
    }

    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
    }
}

/// The receiving half of a terminal.
pub struct PtyReceiver {
    stream: futures_util::stream::SplitStream<Ws>,
}

impl PtyReceiver {
    /// The next frame; `None` when the server closed the connection.
    pub async fn next(&mut self) -> Option<Result<PtyFrame, ClientError>> {
        loop {
            match self.stream.next().await? {
                Ok(Message::Binary(b)) => {
                    return Some(
                        PtyFrame::decode(&b)
                            .ok_or_else(|| ClientError::Decode("unknown terminal frame".into())),
                    );
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(e) => return Some(Err(ClientError::interrupted(&e))),
            }
        }
    }
}

impl Client {
    async fn raw_stream(&self) -> Result<(Box<dyn Io>, String), ClientError> {
        let err = |detail: String| ClientError::Transport {
            endpoint: self.endpoint.to_string(),
            detail,
        };
        match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                Ok((Box::new(s), "ws://islod".into()))
            }
            Endpoint::Http(base) => {
                let rest = base.strip_prefix("http://").ok_or_else(|| {
                    err("terminals over HTTPS are not supported yet; use http:// or the local socket".into())
                })?;
                let host = rest.split('/').next().unwrap_or(rest);
                let s = tokio::net::TcpStream::connect(host)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                Ok((Box::new(s), format!("ws://{host}")))
            }
        }
    }

    /// Open a WebSocket at `path` speaking `protocol`; HTTP refusals become API errors.
    pub(crate) async fn ws_connect(
        &self,
        path: &str,
        protocol: &'static str,
    ) -> Result<Ws, ClientError> {
        let (stream, base) = self.raw_stream().await?;
        let mut req = format!("{base}{path}")
            .into_client_request()
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        req.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
        if let Some(b) = &self.bearer
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {b}"))
        {
            req.headers_mut().insert("authorization", v);
        }
        let (ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp
                        .body()
                        .as_deref()
                        .and_then(|b| serde_json::from_slice::<ErrorResponse>(b).ok());
                    let body = body.unwrap_or(ErrorResponse {
                        code: if status == 401 {
                            ErrorCode::AuthRequired
                        } else {
                            ErrorCode::InternalError
                        },
                        message: format!("HTTP {status}"),
                        request_id: None,
                    });
                    ClientError::Api { status, body }
                }
                other => ClientError::Transport {
                    endpoint: self.endpoint.to_string(),
                    detail: other.to_string(),
                },
            })?;
        Ok(ws)
    }

    /// Open a terminal WebSocket at `path` and send `open` (the low-level call under
    /// [`Client::pty_exec`] and [`Client::pty_attach`]).
    pub async fn pty(&self, path: &str, open: &PtyOpen) -> Result<PtyConn, ClientError> {
        let ws = self.ws_connect(path, "islo.pty.v1").await?;
        let mut conn = PtyConn { ws };
        let text = serde_json::to_string(open).map_err(|e| ClientError::Decode(e.to_string()))?;
        conn.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(conn)
    }

    /// Run `exec` in `sandbox` on a terminal of `size`, or on pipes when `tty` is false.
    pub async fn pty_exec(
        &self,
        sandbox: &str,
        exec: islo_api::ExecRequest,
        size: islo_api::PtySize,
        tty: bool,
    ) -> Result<PtyConn, ClientError> {
        let open = PtyOpen {
            version: islo_api::PTY_PROTOCOL_VERSION,
            size,
            exec: Some(exec),
            tty: (!tty).then_some(false),
        };
        self.pty(&format!("/sandboxes/{}/exec", crate::seg(sandbox)), &open)
            .await
    }

    /// Attach to `session` of `sandbox`, creating it from `create` (command empty: the login
    /// shell) when it is missing or dead.
    pub async fn pty_attach(
        &self,
        sandbox: &str,
        session: &str,
        create: Option<islo_api::ExecRequest>,
        size: islo_api::PtySize,
    ) -> Result<PtyConn, ClientError> {
        let open = PtyOpen {
            version: islo_api::PTY_PROTOCOL_VERSION,
            size,
            exec: create,
            tty: None,
        };
        let path = format!(
            "/sandboxes/{}/sessions/{}/attach",
            crate::seg(sandbox),
            crate::seg(session)
        );
        self.pty(&path, &open).await
    }

    /// Sessions of a sandbox.
    pub async fn list_sessions(
        &self,
        name: &str,
    ) -> Result<islo_api::ListSessionsResponse, ClientError> {
        self.json(self.req(
            reqwest::Method::GET,
            &format!("/sandboxes/{}/sessions", crate::seg(name)),
        ))
        .await
    }

    /// End a session.
    pub async fn kill_session(&self, name: &str, session: &str) -> Result<(), ClientError> {
        let path = format!(
            "/sandboxes/{}/sessions/{}",
            crate::seg(name),
            crate::seg(session)
        );
        self.send(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }
}
