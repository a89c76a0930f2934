//! Server information, image pulls with progress, and the OpenAPI document.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use islo_api::{ImagePullEvent, ImagePullRequest, ServerInfo};
use tokio::sync::mpsc;

use super::HttpState;
use super::error::{ApiError, ApiJson};
use super::sse;
use crate::app::{AppError, Tenant};

#[utoipa::path(get, path = "/agents", responses((status = 200, body = islo_api::AgentProfilesResponse)))]
pub async fn agents(State(s): State<HttpState>) -> Json<islo_api::AgentProfilesResponse> {
    Json(islo_api::AgentProfilesResponse {
        agents: s.app.settings.agents.clone(),
    })
}

#[utoipa::path(get, path = "/system", responses((status = 200, body = ServerInfo)))]
pub async fn info(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
) -> Result<Json<ServerInfo>, ApiError> {
    let store = &s.app.store;
    Ok(Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        runtime: s.app.driver.name(),
        tenant: t.name,
        state_dir: s.app.settings.state_dir.clone(),
        images_cached: store.image_count().map_err(AppError::from)?,
        sandboxes_running: store.running_count().map_err(AppError::from)?,
    }))
}

#[utoipa::path(post, path = "/images/pull", request_body = ImagePullRequest,
    responses((status = 200, description = "text/event-stream of ImagePullEvent: progress, done, error")))]
pub async fn pull(State(s): State<HttpState>, ApiJson(req): ApiJson<ImagePullRequest>) -> Response {
    let (tx, rx) = mpsc::channel::<ImagePullEvent>(64);
    let app = s.app.clone();
    tokio::spawn(async move {
        let last = match app.images.ensure(&req.image, Some(tx.clone())).await {
            Ok((img, cached)) => ImagePullEvent::Done {
                digest: img.digest,
                cached,
            },
            Err(e) => ImagePullEvent::Error {
                message: e.to_string(),
            },
        };
        let _ = tx.send(last).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let ev = rx.recv().await?;
        let name = match &ev {
            ImagePullEvent::Progress { .. } => "progress",
            ImagePullEvent::Done { .. } => "done",
            ImagePullEvent::Error { .. } => "error",
        };
        let data = serde_json::to_string(&ev).unwrap_or_default();
        Some((
            Ok::<_, std::convert::Infallible>(sse::event(name, &data)),
            rx,
        ))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(body),
    )
        .into_response()
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document(),
    )
}
