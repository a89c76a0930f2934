//! `GET /sandboxes/{sandbox_name}/events`: a sandbox's creation as server-sent events, one
//! `phase` event per step (image pull progress included), ending after `ready` or `failed`.
//! A creation long over answers its last phase at once.

use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::Response;
use islo_api::{CreationEvent, CreationPhase};
use tokio::sync::watch;

use super::HttpState;
use super::error::ApiError;
use super::sse;
use crate::app::{AppError, Tenant};

fn encode(e: &CreationEvent) -> bytes::Bytes {
    sse::event("phase", &serde_json::to_string(e).unwrap_or_default())
}

/// Each change of the creation, the current one first, until it has ended; a comment line
/// every 15 s keeps the connection open through proxies.
fn follow(rx: watch::Receiver<CreationEvent>) -> Body {
    let stream = futures_util::stream::unfold(Some((rx, true)), |st| async move {
        let (mut rx, first) = st?;
        if !first {
            tokio::select! {
                changed = rx.changed() => changed.ok()?,
                () = tokio::time::sleep(Duration::from_secs(15)) => {
                    return Some((Ok::<_, std::io::Error>(sse::keepalive()), Some((rx, false))));
                }
            }
        }
        let ev = rx.borrow_and_update().clone();
        let next = (!crate::app::creation_ended(&ev)).then_some((rx, false));
        Some((Ok(encode(&ev)), next))
    });
    Body::from_stream(stream)
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/events",
    params(("sandbox_name" = String, Path, description = "The sandbox's name")),
    responses((status = 200, description = "text/event-stream: `phase` events (CreationEvent as data) until `ready` or `failed`"),
              (status = 401, body = islo_api::ErrorResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn events(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let row = s.app.get(&t, &name)?;
    let body = match s.app.creation_events(&row) {
        Some(rx) => follow(rx),
        None => {
            let last = CreationEvent {
                phase: s.app.creation_phase(&row),
                detail: (s.app.creation_phase(&row) == CreationPhase::Failed)
                    .then(|| row.status_reason.clone())
                    .flatten(),
                current: None,
                total: None,
                at: crate::store::now_rfc3339(),
            };
            Body::from(encode(&last))
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .map_err(|e| AppError::Internal(e.to_string()).into())
}
