//! Terminal WebSockets: `GET /sandboxes/{name}/exec` (a command on a terminal) and
//! `GET /sandboxes/{name}/sessions/{session}/attach` (a persistent session), bridged to the
//! sandbox agent. Frame protocol: `islo_api::PtyFrame` (documented in `islo_api::session`).

use super::HttpState;
use super::error::{ApiError, ApiJson};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use futures_util::{SinkExt, StreamExt};
use islo_api::{
    CreateSessionRequest, CreateSessionResponse, ListSessionsResponse, PTY_PROTOCOL_VERSION,
    PtyExit, PtyFrame, PtyOpen, SessionInfo,
};

use crate::app::{AppError, EXIT_CANNOT_START, ExecEvent, ExecInput, ExecStream, Tenant};

/// The WebSocket subprotocol naming this version of the frame protocol.
pub const SUBPROTOCOL: &str = "islo.pty.v1";

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/sessions",
    responses((status = 200, body = ListSessionsResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Json<ListSessionsResponse>, ApiError> {
    Ok(Json(ListSessionsResponse {
        sessions: s.app.list_sessions(&t, &name).await?,
    }))
}

#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/sessions", request_body = CreateSessionRequest,
    responses((status = 200, body = CreateSessionResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn create(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CreateSessionRequest>,
) -> Result<Json<CreateSessionResponse>, ApiError> {
    Ok(Json(s.app.create_session(&t, &name, &req).await?))
}

#[utoipa::path(delete, path = "/sandboxes/{sandbox_name}/sessions/{session}",
    responses((status = 204), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn kill(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((name, session)): Path<(String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    s.app.kill_session(&t, &name, &session).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/exec",
    responses((status = 101, description = "WebSocket: a command on a terminal (protocol islo.pty.v1)"),
              (status = 404, body = islo_api::ErrorResponse), (status = 409, body = islo_api::ErrorResponse)))]
pub async fn exec(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let row = s.app.awake(&t, &name).await?;
    Ok(terminal(ws, move |open| async move {
        Ok((s.app.exec_terminal(&row, &open).await?, None))
    }))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/sessions/{session}/attach",
    responses((status = 101, description = "WebSocket: attach to a session (protocol islo.pty.v1)"),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn attach(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((name, session)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let row = s.app.awake(&t, &name).await?;
    crate::app::validate_session_name(&session)?;
    Ok(terminal(ws, move |open| async move {
        let (stream, info) = s.app.attach_session(&row, &session, &open, true).await?;
        Ok((stream, Some(info)))
    }))
}

/// What opening a terminal yields: the stream, and the session's state (attaches).
type Opened = (ExecStream, Option<SessionInfo>);

/// Upgrade to a terminal WebSocket: read the opening, let `start` open the stream, bridge.
fn terminal<F, Fut>(ws: WebSocketUpgrade, start: F) -> Response
where
    F: FnOnce(PtyOpen) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Opened, AppError>> + Send,
{
    ws.protocols([SUBPROTOCOL])
        .on_upgrade(move |mut socket| async move {
            let opened = match opening(&mut socket).await {
                Ok(open) => start(open).await.map_err(|e| e.to_string()),
                Err(m) => Err(m),
            };
            match opened {
                Ok((stream, info)) => bridge(socket, stream, info).await,
                Err(m) => refuse(socket, m).await,
            }
        })
}

/// The client's first message: a JSON `PtyOpen` of a version this server speaks.
async fn opening(ws: &mut WebSocket) -> Result<PtyOpen, String> {
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), ws.recv())
        .await
        .map_err(|_| "no opening message within 30 s".to_string())?;
    let Some(Ok(Message::Text(text))) = first else {
        return Err("the first message must be a text message holding the JSON opening".into());
    };
    let open: PtyOpen = serde_json::from_str(&text).map_err(|e| format!("invalid opening: {e}"))?;
    if open.version != PTY_PROTOCOL_VERSION {
        return Err(format!(
            "terminal protocol version {} is not supported (this server speaks {PTY_PROTOCOL_VERSION})",
            open.version
        ));
    }
    Ok(open)
}

/// End a terminal that could not start: the reason, then [`EXIT_CANNOT_START`].
async fn refuse(mut ws: WebSocket, message: String) {
    let exit = PtyFrame::Exit(PtyExit {
        code: EXIT_CANNOT_START,
    });
    for f in [PtyFrame::Error(message), exit] {
        let _ = ws.send(Message::Binary(f.encode().into())).await;
    }
    let _ = ws.send(Message::Close(None)).await;
}

/// The frames of an exec event: an error is followed by the exit code it stands for.
fn frames(ev: ExecEvent) -> Vec<PtyFrame> {
    match ev {
        ExecEvent::Stdout(p) => vec![PtyFrame::Data(p)],
        ExecEvent::Stderr(p) => vec![PtyFrame::Stderr(p)],
        ExecEvent::Exit(code) => vec![PtyFrame::Exit(PtyExit { code })],
        ExecEvent::Error(e) => {
            let code = e.exit_code();
            vec![PtyFrame::Error(e.message), PtyFrame::Exit(PtyExit { code })]
        }
        ExecEvent::TimedOut => Vec::new(),
    }
}

/// The exec input of a client frame (`None`: nothing to send).
fn input(f: PtyFrame) -> Option<ExecInput> {
    match f {
        PtyFrame::Data(d) => Some(ExecInput::Data(d)),
        PtyFrame::Eof => Some(ExecInput::Eof),
        PtyFrame::Resize(sz) => Some(ExecInput::Resize {
            cols: sz.cols,
            rows: sz.rows,
        }),
        _ => None,
    }
}

/// Carry terminal traffic both ways until the process ends or the client leaves (which
/// detaches from a session, and ends a terminal exec).
async fn bridge(ws: WebSocket, stream: ExecStream, info: Option<SessionInfo>) {
    let ExecStream {
        mut output,
        input: mut to_agent,
    } = stream;
    let (mut tx, mut rx) = ws.split();
    if let Some(i) = info {
        let _ = tx
            .send(Message::Binary(PtyFrame::Info(i).encode().into()))
            .await;
    }
    let to_client = async move {
        'events: while let Some(ev) = output.next().await {
            for f in frames(ev) {
                if tx.send(Message::Binary(f.encode().into())).await.is_err() {
                    break 'events;
                }
            }
        }
        let _ = tx.send(Message::Close(None)).await;
    };
    // Input after the process ended is dropped; the bridge ends on the client's close or when
    // the last event has been relayed, never on that.
    let from_client = async move {
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Binary(b) => {
                    if let Some(i) = PtyFrame::decode(&b).and_then(input) {
                        to_agent.send(i).await;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = to_client => {}
        () = from_client => {}
    }
}
