//! API key handlers (`/api-keys`): the secret is made here, answered once, and only its hash
//! is kept.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use islo_api::{ApiKeyResponse, CreateApiKeyRequest, CreatedApiKeyResponse};

use super::error::{ApiError, ApiJson};
use super::{HttpState, Transport};
use crate::app::Tenant;

#[utoipa::path(get, path = "/api-keys",
    responses((status = 200, body = [ApiKeyResponse]), (status = 401, body = islo_api::ErrorResponse)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
) -> Result<Json<Vec<ApiKeyResponse>>, ApiError> {
    Ok(Json(s.app.list_keys(&t)?))
}

/// Make a key. `tenant` other than the caller's is for the installation's administrator only
/// (a caller on the unix socket without a key).
#[utoipa::path(post, path = "/api-keys", request_body = CreateApiKeyRequest,
    responses((status = 200, body = CreatedApiKeyResponse), (status = 401, body = islo_api::ErrorResponse),
              (status = 403, body = islo_api::ErrorResponse), (status = 422, body = islo_api::ErrorResponse)))]
pub async fn create(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> Result<Json<CreatedApiKeyResponse>, ApiError> {
    let admin = s.transport == Transport::Unix && t == s.local_tenant;
    let secret = super::new_api_key();
    let key = s
        .app
        .create_key(&t, &req, admin, &super::hash_secret(&secret))?;
    Ok(Json(CreatedApiKeyResponse {
        key,
        api_key: secret,
    }))
}

#[utoipa::path(delete, path = "/api-keys/{key_id}",
    params(("key_id" = String, Path, description = "`key_…`")),
    responses((status = 204), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn delete(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.delete_key(&t, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api-keys/{key_id}/deactivate",
    params(("key_id" = String, Path, description = "`key_…`")),
    responses((status = 200, body = ApiKeyResponse), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn deactivate(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(s.app.set_key_active(&t, &id, false)?))
}

#[utoipa::path(post, path = "/api-keys/{key_id}/activate",
    params(("key_id" = String, Path, description = "`key_…`")),
    responses((status = 200, body = ApiKeyResponse), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn activate(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    Ok(Json(s.app.set_key_active(&t, &id, true)?))
}
