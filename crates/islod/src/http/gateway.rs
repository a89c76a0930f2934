//! Gateway profile and rule handlers, and the gateway's decision log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use islo_api::{
    GatewayEventsQuery, GatewayEventsResponse, GatewayProfileDetailResponse, GatewayProfileRequest,
    GatewayProfileResponse, GatewayRuleRequest, GatewayRuleResponse, ReorderRulesRequest,
};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use crate::app::Tenant;

type R<T> = Result<Json<T>, ApiError>;

#[utoipa::path(get, path = "/gateway/profiles",
    responses((status = 200, body = Vec<GatewayProfileResponse>)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
) -> R<Vec<GatewayProfileResponse>> {
    Ok(Json(s.app.gateway_profiles(&t)?))
}

#[utoipa::path(post, path = "/gateway/profiles", request_body = GatewayProfileRequest,
    responses((status = 200, body = GatewayProfileResponse), (status = 409, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn create(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    ApiJson(req): ApiJson<GatewayProfileRequest>,
) -> R<GatewayProfileResponse> {
    Ok(Json(s.app.put_gateway_profile(&t, None, &req)?))
}

#[utoipa::path(get, path = "/gateway/profiles/{profile_id}",
    responses((status = 200, body = GatewayProfileDetailResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn get(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
) -> R<GatewayProfileDetailResponse> {
    Ok(Json(s.app.gateway_profile_detail(&t, &id)?))
}

#[utoipa::path(patch, path = "/gateway/profiles/{profile_id}", request_body = GatewayProfileRequest,
    responses((status = 200, body = GatewayProfileResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 409, body = islo_api::ErrorResponse)))]
pub async fn update(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<GatewayProfileRequest>,
) -> R<GatewayProfileResponse> {
    Ok(Json(s.app.put_gateway_profile(&t, Some(&id), &req)?))
}

#[utoipa::path(delete, path = "/gateway/profiles/{profile_id}",
    responses((status = 204), (status = 404, body = islo_api::ErrorResponse), (status = 409, body = islo_api::ErrorResponse)))]
pub async fn delete(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.delete_gateway_profile(&t, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/gateway/profiles/{profile_id}/rules", request_body = GatewayRuleRequest,
    responses((status = 200, body = GatewayRuleResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn add_rule(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<GatewayRuleRequest>,
) -> R<GatewayRuleResponse> {
    Ok(Json(s.app.put_gateway_rule(&t, &id, None, &req)?))
}

#[utoipa::path(patch, path = "/gateway/profiles/{profile_id}/rules/{rule_id}", request_body = GatewayRuleRequest,
    responses((status = 200, body = GatewayRuleResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn update_rule(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((id, rule)): Path<(String, String)>,
    ApiJson(req): ApiJson<GatewayRuleRequest>,
) -> R<GatewayRuleResponse> {
    Ok(Json(s.app.put_gateway_rule(&t, &id, Some(&rule), &req)?))
}

#[utoipa::path(delete, path = "/gateway/profiles/{profile_id}/rules/{rule_id}",
    responses((status = 204), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn delete_rule(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((id, rule)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.app.delete_gateway_rule(&t, &id, &rule)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/gateway/profiles/{profile_id}/rules/reorder", request_body = ReorderRulesRequest,
    responses((status = 200, body = Vec<GatewayRuleResponse>), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn reorder(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReorderRulesRequest>,
) -> R<Vec<GatewayRuleResponse>> {
    Ok(Json(s.app.reorder_gateway_rules(&t, &id, &req)?))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/gateway-events", params(GatewayEventsQuery),
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
