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
use crate::app::Tenant;

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
    Ok(Json(s.app.server_info(&t)?))
}

#[utoipa::path(post, path = "/images/pull", request_body = ImagePullRequest,
    responses((status = 200, description = "text/event-stream of ImagePullEvent: progress, done, error")))]
pub async fn pull(State(s): State<HttpState>, ApiJson(req): ApiJson<ImagePullRequest>) -> Response {
    let (tx, rx) = mpsc::channel::<ImagePullEvent>(64);
    let app = s.app.clone();
    tokio::spawn(async move {
        let last = app.pull_image(&req.image, tx.clone()).await;
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

/// The cluster's nodes, their load and health (a single host lists itself).
#[utoipa::path(get, path = "/nodes", responses((status = 200, body = islo_api::NodeListResponse)))]
pub async fn nodes(
    State(s): State<HttpState>,
) -> Result<Json<islo_api::NodeListResponse>, ApiError> {
    let app = s.app.clone();
    let list = tokio::task::spawn_blocking(move || app.nodes())
        .await
        .map_err(|e| ApiError(crate::app::AppError::Join(e)))??;
    Ok(Json(list))
}

/// What islod's host has and lacks (`islo doctor`).
#[utoipa::path(get, path = "/system/doctor", responses((status = 200, body = islo_api::DoctorReport)))]
pub async fn doctor(State(s): State<HttpState>) -> Json<islo_api::DoctorReport> {
    Json(s.app.doctor().await)
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document(),
    )
}
