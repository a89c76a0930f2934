//! Exec handlers: background exec with a polled result, and SSE streaming.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::Response;
use axum::{Extension, Json};
use base64::Engine;
use islo_api::{ExecRequest, ExecResponse, ExecResultResponse};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use super::sse::{self, Utf8Carry};
use crate::app::{AppError, ExecEvent, Tenant};

const KEEPALIVE: Duration = Duration::from_secs(15);

#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/exec", request_body = ExecRequest,
    responses((status = 200, body = ExecResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 409, body = islo_api::ErrorResponse)))]
pub async fn start(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ExecRequest>,
) -> Result<Json<ExecResponse>, ApiError> {
    s.app.awake(&t, &name).await?;
    Ok(Json(s.app.exec_start(&t, &name, &req)?))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/exec/{exec_id}",
    responses((status = 200, body = ExecResultResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn result(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((name, exec_id)): Path<(String, String)>,
) -> Result<Json<ExecResultResponse>, ApiError> {
    Ok(Json(s.app.exec_result(&t, &name, &exec_id)?))
}

/// Per-stream encoders of event data.
struct Encoders {
    base64: bool,
    out: Utf8Carry,
    err: Utf8Carry,
}

impl Encoders {
    fn encode(&mut self, ev: ExecEvent) -> bytes::Bytes {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match ev {
            ExecEvent::Stdout(b) if self.base64 => sse::event("stdout", &b64(&b)),
            ExecEvent::Stderr(b) if self.base64 => sse::event("stderr", &b64(&b)),
            ExecEvent::Stdout(b) => sse::event("stdout", &self.out.push(&b)),
            ExecEvent::Stderr(b) => sse::event("stderr", &self.err.push(&b)),
            ExecEvent::Exit(code) => sse::event("exit", &code.to_string()),
            ExecEvent::TimedOut => sse::event("error", "command timed out and was killed"),
            ExecEvent::Error(e) => sse::event("error", &e.message),
        }
    }
}

#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/exec/stream", request_body = ExecRequest,
    responses((status = 200, description = "text/event-stream: stdout, stderr, exit, error"),
              (status = 404, body = islo_api::ErrorResponse), (status = 409, body = islo_api::ErrorResponse)))]
pub async fn stream(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ExecRequest>,
) -> Result<Response, ApiError> {
    let base64 = match req.stream_encoding.as_deref() {
        None | Some("text") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(AppError::Validation(format!("unknown stream_encoding {other:?}")).into());
        }
    };
    s.app.awake(&t, &name).await?;
    let (_, rx, exec_id) = s.app.exec_stream(&t, &name, &req)?;
    let enc = Encoders {
        base64,
        out: Utf8Carry::default(),
        err: Utf8Carry::default(),
    };
    let body =
        futures_util::stream::unfold((rx, enc, false), |(mut rx, mut enc, ended)| async move {
            if ended {
                return None;
            }
            match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
                Err(_) => Some((
                    Ok::<_, std::convert::Infallible>(sse::keepalive()),
                    (rx, enc, false),
                )),
                Ok(None) => None,
                Ok(Some(ev)) => {
                    let last = matches!(ev, ExecEvent::Exit(_) | ExecEvent::Error(_));
                    Some((Ok(enc.encode(ev)), (rx, enc, last)))
                }
            }
        });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-islo-exec-id", exec_id)
        .body(Body::from_stream(body))
        .map_err(|e| AppError::Internal(e.to_string()).into())
}
