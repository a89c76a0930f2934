//! Incoming webhook handlers (`/webhooks/incoming…`) and the receiver (`/hooks/{webhook_id}`,
//! any method, no islo credentials: the webhook's own auth is the check).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use islo_api::{
    CreateWebhookRequest, DeliveriesQuery, IncomingWebhook, UpdateWebhookRequest,
    WebhookDeliveryDetail, WebhookDeliverySummary, WebhookReceipt,
};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use crate::app::Tenant;
use crate::app::webhooks::Refusal;
use crate::app::webhooks::verify::Received;

#[utoipa::path(get, path = "/webhooks/incoming",
    responses((status = 200, body = [IncomingWebhook])))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
) -> Result<Json<Vec<IncomingWebhook>>, ApiError> {
    Ok(Json(s.app.list_webhooks(&t)?))
}

#[utoipa::path(post, path = "/webhooks/incoming", request_body = CreateWebhookRequest,
    responses((status = 200, body = IncomingWebhook), (status = 400, body = islo_api::ErrorResponse)))]
pub async fn create(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    ApiJson(req): ApiJson<CreateWebhookRequest>,
) -> Result<Json<IncomingWebhook>, ApiError> {
    Ok(Json(s.app.create_webhook(&t, &req)?))
}

#[utoipa::path(get, path = "/webhooks/incoming/{webhook_id}",
    responses((status = 200, body = IncomingWebhook), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn get(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Json<IncomingWebhook>, ApiError> {
    Ok(Json(s.app.get_webhook(&t, &id)?))
}

#[utoipa::path(patch, path = "/webhooks/incoming/{webhook_id}", request_body = UpdateWebhookRequest,
    responses((status = 200, body = IncomingWebhook), (status = 400, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn update(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateWebhookRequest>,
) -> Result<Json<IncomingWebhook>, ApiError> {
    Ok(Json(s.app.update_webhook(&t, &id, &req)?))
}

#[utoipa::path(delete, path = "/webhooks/incoming/{webhook_id}",
    responses((status = 204), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn delete(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.delete_webhook(&t, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/webhooks/incoming/{webhook_id}/deliveries", params(DeliveriesQuery),
    responses((status = 200, body = [WebhookDeliverySummary]), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn deliveries(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Vec<WebhookDeliverySummary>>, ApiError> {
    Ok(Json(s.app.webhook_deliveries(&t, &id, &q)?))
}

#[utoipa::path(get, path = "/webhooks/incoming/{webhook_id}/deliveries/{event_id}",
    responses((status = 200, body = WebhookDeliveryDetail), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn delivery(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((id, event)): Path<(String, String)>,
) -> Result<Json<WebhookDeliveryDetail>, ApiError> {
    Ok(Json(s.app.webhook_delivery(&t, &id, &event)?))
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({"error": message}))).into_response()
}

/// The receiver. 202 with the event id when accepted, 200 for a replay, 401 when the sender's
/// check fails, 400 when the event lacks what the webhook needs, 404 for an unknown or
/// disabled webhook, 413 (before anything else) for a body over the limit.
pub async fn receive(State(s): State<HttpState>, Path(id): Path<String>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let limit = s.app.settings.webhook_max_body;
    let body: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is over the limit of {limit} bytes"),
            );
        }
    };
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        client,
    };
    match s.app.receive_webhook(&id, received) {
        Ok(
            r @ WebhookReceipt {
                duplicate: true, ..
            },
        ) => (StatusCode::OK, Json(r)).into_response(),
        Ok(r) => (StatusCode::ACCEPTED, Json(r)).into_response(),
        Err(Refusal::Unknown) => refuse(StatusCode::NOT_FOUND, "no such webhook"),
        Err(Refusal::Unverified(why)) => refuse(StatusCode::UNAUTHORIZED, &why),
        Err(Refusal::Unusable(why)) => refuse(StatusCode::BAD_REQUEST, &why),
    }
}
