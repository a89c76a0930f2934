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
use islo_agent::proto::FrameKind;
use islo_api::{
    CreateSessionRequest, CreateSessionResponse, ListSessionsResponse, PTY_PROTOCOL_VERSION,
    PtyExit, PtyFrame, PtyOpen, SessionInfo,
};
use std::sync::Arc;

use crate::agent_io::{
    end_recording, read_agent_frame, record, record_output, resize_entry, write_agent_frame,
};
use crate::app::{AppError, Recording, Tenant};

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
    s.app.running(&t, &name)?;
    Ok(terminal(ws, move |open| async move {
        let (stream, rec) = s.app.exec_ws(&t, &name, &open).await?;
        Ok((stream, None, Some(rec)))
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
    s.app.running(&t, &name)?;
    crate::app::validate_session_name(&session)?;
    Ok(terminal(ws, move |open| async move {
        let (stream, info, rec) = s
            .app
            .attach_session(&t, &name, &session, &open, true)
            .await?;
        Ok((stream, Some(info), rec))
    }))
}

/// What opening a terminal yields: the agent connection, the session's state (attaches), and
/// its recording in the audit log.
type Opened = (
    std::os::unix::net::UnixStream,
    Option<SessionInfo>,
    Option<Arc<Recording>>,
);

/// Upgrade to a terminal WebSocket: read the opening, let `start` open the agent side, bridge.
fn terminal<F, Fut>(ws: WebSocketUpgrade, start: F) -> Response
where
    F: FnOnce(PtyOpen) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Opened, AppError>> + Send,
{
    ws.protocols([SUBPROTOCOL])
        .on_upgrade(move |mut socket| async move {
            let opened = match opening(&mut socket).await {
                Ok(open) => {
                    // Pipes have no terminal size to record.
                    let size = (open.tty != Some(false)).then_some(open.size);
                    start(open)
                        .await
                        .map_err(|e| e.to_string())
                        .map(|o| (o, size))
                }
                Err(m) => Err(m),
            };
            match opened {
                Ok(((stream, info, rec), size)) => {
                    if let Some(size) = size {
                        record(
                            &rec,
                            "resize",
                            resize_entry(size.cols, size.rows).as_bytes(),
                        );
                    }
                    bridge(socket, stream, info, rec).await
                }
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

async fn refuse(mut ws: WebSocket, message: String) {
    let _ = ws
        .send(Message::Binary(PtyFrame::Error(message).encode().into()))
        .await;
    let _ = ws.send(Message::Close(None)).await;
}

/// Carry terminal traffic both ways until the process ends or the client leaves (which
/// detaches from a session, and ends a terminal exec).
async fn bridge(
    ws: WebSocket,
    agent: std::os::unix::net::UnixStream,
    info: Option<SessionInfo>,
    rec: Option<Arc<Recording>>,
) {
    let agent = match crate::agent_io::to_async(agent) {
        Ok(a) => a,
        Err(e) => return refuse(ws, e.to_string()).await,
    };
    let (mut ar, mut aw) = agent.into_split();
    let (mut tx, mut rx) = ws.split();
    if let Some(i) = info {
        let _ = tx
            .send(Message::Binary(PtyFrame::Info(i).encode().into()))
            .await;
    }
    let (rec_out, rec_in) = (rec.clone(), rec.clone());
    let to_client = async move {
        loop {
            let frame = match read_agent_frame(&mut ar).await {
                Ok(Some((FrameKind::Stdout, p))) => {
                    record_output(&rec_out, "stdout", &p).await;
                    PtyFrame::Data(p)
                }
                Ok(Some((FrameKind::Stderr, p))) => {
                    record_output(&rec_out, "stderr", &p).await;
                    PtyFrame::Stderr(p)
                }
                Ok(Some((FrameKind::Exit, p))) => {
                    let code = serde_json::from_slice::<islo_agent::ExitStatus>(&p)
                        .map(|s| s.code)
                        .unwrap_or(-1);
                    end_recording(&rec_out, Some(code)).await;
                    let _ = tx
                        .send(Message::Binary(
                            PtyFrame::Exit(PtyExit { code }).encode().into(),
                        ))
                        .await;
                    break;
                }
                Ok(Some((FrameKind::Error, p))) => {
                    PtyFrame::Error(String::from_utf8_lossy(&p).into_owned())
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => PtyFrame::Error("the sandbox's terminal went away".into()),
            };
            let last = matches!(frame, PtyFrame::Error(_));
            if tx
                .send(Message::Binary(frame.encode().into()))
                .await
                .is_err()
                || last
            {
                break;
            }
        }
        let _ = tx.send(Message::Close(None)).await;
    };
    // Input to an agent connection that has closed (the process already ended) is dropped;
    // the bridge ends on the client's close or when the exit has been relayed, never on that.
    let from_client = async move {
        let mut agent_open = true;
        while let Some(Ok(msg)) = rx.next().await {
            if !agent_open && !matches!(msg, Message::Close(_)) {
                continue;
            }
            let sent = match msg {
                Message::Binary(b) => match PtyFrame::decode(&b) {
                    Some(PtyFrame::Data(d)) => {
                        record(&rec_in, "stdin", &d);
                        write_agent_frame(&mut aw, FrameKind::Stdin, &d).await
                    }
                    Some(PtyFrame::Eof) => {
                        write_agent_frame(&mut aw, FrameKind::StdinEof, b"").await
                    }
                    Some(PtyFrame::Resize(sz)) => {
                        record(&rec_in, "resize", resize_entry(sz.cols, sz.rows).as_bytes());
                        let size = islo_agent::TtySize {
                            rows: sz.rows,
                            cols: sz.cols,
                        };
                        write_agent_frame(
                            &mut aw,
                            FrameKind::Resize,
                            &serde_json::to_vec(&size).unwrap_or_default(),
                        )
                        .await
                    }
                    _ => Ok(()),
                },
                Message::Close(_) => break,
                _ => Ok(()),
            };
            if sent.is_err() {
                agent_open = false;
            }
        }
    };
    tokio::select! {
        () = to_client => {}
        () = from_client => {}
    }
    end_recording(&rec, None).await;
}
