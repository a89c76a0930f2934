//! Environment handlers (`/environments`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use islo_api::{
    CreateEnvironmentRequest, EnvironmentListItem, EnvironmentResponse, UpdateEnvironmentRequest,
};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use crate::app::Tenant;

#[utoipa::path(get, path = "/environments",
    responses((status = 200, body = [EnvironmentListItem]), (status = 401, body = islo_api::ErrorResponse)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
) -> Result<Json<Vec<EnvironmentListItem>>, ApiError> {
    Ok(Json(s.app.list_environments(&t)?))
}

#[utoipa::path(post, path = "/environments", request_body = CreateEnvironmentRequest,
    responses((status = 200, body = EnvironmentResponse), (status = 401, body = islo_api::ErrorResponse),
              (status = 409, body = islo_api::ErrorResponse), (status = 422, body = islo_api::ErrorResponse)))]
pub async fn create(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    ApiJson(req): ApiJson<CreateEnvironmentRequest>,
) -> Result<Json<EnvironmentResponse>, ApiError> {
    Ok(Json(s.app.create_environment(&t, &req)?))
}

#[utoipa::path(get, path = "/environments/{environment_ref}",
    params(("environment_ref" = String, Path, description = "The environment's id or name")),
    responses((status = 200, body = EnvironmentResponse), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn get(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(r): Path<String>,
) -> Result<Json<EnvironmentResponse>, ApiError> {
    Ok(Json(s.app.get_environment(&t, &r)?))
}

#[utoipa::path(patch, path = "/environments/{environment_ref}", request_body = UpdateEnvironmentRequest,
    params(("environment_ref" = String, Path, description = "The environment's id or name")),
    responses((status = 200, body = EnvironmentResponse), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse), (status = 409, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn update(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(r): Path<String>,
    ApiJson(req): ApiJson<UpdateEnvironmentRequest>,
) -> Result<Json<EnvironmentResponse>, ApiError> {
    Ok(Json(s.app.update_environment(&t, &r, &req)?))
}

#[utoipa::path(delete, path = "/environments/{environment_ref}",
    params(("environment_ref" = String, Path, description = "The environment's id or name")),
    responses((status = 204), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn delete(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(r): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.delete_environment(&t, &r)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/environments/{environment_ref}/default",
    params(("environment_ref" = String, Path, description = "The environment's id or name")),
    responses((status = 200, body = EnvironmentResponse), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn set_default(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(r): Path<String>,
) -> Result<Json<EnvironmentResponse>, ApiError> {
    Ok(Json(s.app.set_default_environment(&t, &r)?))
}
