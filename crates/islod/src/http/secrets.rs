//! Secret handlers and the gateway's decision log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use islo_api::{
    GatewayEventsQuery, GatewayEventsResponse, SecretRequest, SecretResponse, SecretsResponse,
};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use crate::app::Tenant;

#[utoipa::path(get, path = "/secrets", responses((status = 200, body = SecretsResponse)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
) -> Result<Json<SecretsResponse>, ApiError> {
    Ok(Json(SecretsResponse {
        secrets: s.app.secrets(&t)?,
    }))
}

#[utoipa::path(put, path = "/secrets/{name}", request_body = SecretRequest,
    responses((status = 200, body = SecretResponse), (status = 422, body = islo_api::ErrorResponse)))]
pub async fn put(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<SecretRequest>,
) -> Result<Json<SecretResponse>, ApiError> {
    Ok(Json(s.app.put_secret(&t, &name, &req)?))
}

#[utoipa::path(delete, path = "/secrets/{name}",
    responses((status = 204), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn delete(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.delete_secret(&t, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/sandboxes/{sandbox}/gateway-events", params(GatewayEventsQuery),
    responses((status = 200, body = GatewayEventsResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn events(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(sandbox): Path<String>,
    Query(q): Query<GatewayEventsQuery>,
) -> Result<Json<GatewayEventsResponse>, ApiError> {
    Ok(Json(GatewayEventsResponse {
        events: s.app.gateway_events(&t, &sandbox, &q)?,
    }))
}
