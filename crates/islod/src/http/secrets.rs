//! Secret handlers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use islo_api::{SecretRequest, SecretResponse, SecretsResponse};

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
