//! Audit log handlers.

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use islo_api::{
    AgentEventsQuery, AgentSessionEventResponse, AgentSessionResponse, AgentSessionsQuery,
    ExecLogsQuery, ExecLogsResponse, ExecSessionResponse, ExecSessionsQuery,
};

use super::HttpState;
use super::error::ApiError;
use crate::app::Tenant;

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/exec-sessions", params(ExecSessionsQuery),
    responses((status = 200, body = Vec<ExecSessionResponse>), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(sandbox): Path<String>,
    Query(q): Query<ExecSessionsQuery>,
) -> Result<Json<Vec<ExecSessionResponse>>, ApiError> {
    Ok(Json(s.app.exec_sessions(&t, &sandbox, &q.since)?))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/exec-sessions/{exec_id}",
    responses((status = 200, body = ExecSessionResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn one(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((sandbox, exec_id)): Path<(String, String)>,
) -> Result<Json<ExecSessionResponse>, ApiError> {
    Ok(Json(s.app.exec_session(&t, &sandbox, &exec_id)?))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/exec-sessions/{exec_id}/logs", params(ExecLogsQuery),
    responses((status = 200, body = ExecLogsResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn logs(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((sandbox, exec_id)): Path<(String, String)>,
    Query(q): Query<ExecLogsQuery>,
) -> Result<Json<ExecLogsResponse>, ApiError> {
    Ok(Json(s.app.exec_logs(&t, &sandbox, &exec_id, &q)?))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/exec-sessions/{exec_id}/asciinema",
    responses((status = 200, description = "asciinema v2 recording (application/x-asciicast)"),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn asciinema(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((sandbox, exec_id)): Path<(String, String)>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let cast = s.app.exec_asciinema(&t, &sandbox, &exec_id)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-asciicast")],
        cast,
    ))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/agent-sessions", params(AgentSessionsQuery),
    responses((status = 200, body = Vec<AgentSessionResponse>), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn agent_sessions(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(sandbox): Path<String>,
    Query(q): Query<AgentSessionsQuery>,
) -> Result<Json<Vec<AgentSessionResponse>>, ApiError> {
    Ok(Json(s.app.agent_sessions(&t, &sandbox, &q).await?))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/agent-sessions/{session_name}/events", params(AgentEventsQuery),
    responses((status = 200, body = Vec<AgentSessionEventResponse>), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn agent_events(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((sandbox, name)): Path<(String, String)>,
    Query(q): Query<AgentEventsQuery>,
) -> Result<Json<Vec<AgentSessionEventResponse>>, ApiError> {
    Ok(Json(
        s.app.agent_session_events(&t, &sandbox, &name, &q).await?,
    ))
}
