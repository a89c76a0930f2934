//! Shares (`/sandboxes/{sandbox_name}/shares`), the public share URLs (`/s/{token}/…`, or a
//! share's own host name), and the authenticated `…/proxy/{port}` and `…/ws-proxy/{port}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use islo_api::{CreateShareRequest, ShareRequestRecord, ShareResponse};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use super::proxy::{self, Deadline, Forward, Meter};
use crate::app::{AppError, ShareRefusal, Tenant};

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/shares",
    params(("sandbox_name" = String, Path, description = "The sandbox's name")),
    responses((status = 200, body = [ShareResponse]), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ShareResponse>>, ApiError> {
    Ok(Json(s.app.list_shares(&t, &name)?))
}

#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/shares", request_body = CreateShareRequest,
    params(("sandbox_name" = String, Path, description = "The sandbox's name")),
    responses((status = 200, body = ShareResponse), (status = 400, body = islo_api::ErrorResponse),
              (status = 401, body = islo_api::ErrorResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn create(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CreateShareRequest>,
) -> Result<Json<ShareResponse>, ApiError> {
    Ok(Json(s.app.create_share(&t, &name, &req)?))
}

#[utoipa::path(delete, path = "/sandboxes/{sandbox_name}/shares/{share_id}",
    params(("sandbox_name" = String, Path, description = "The sandbox's name"),
           ("share_id" = String, Path, description = "`sh_…`, or the share's URL")),
    responses((status = 204), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn revoke(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.app.revoke_share(&t, &name, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many request records to return.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// At most this many, the newest (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Every request served through a share (an islo extension).
#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/shares/{share_id}/requests",
    params(("sandbox_name" = String, Path, description = "The sandbox's name"),
           ("share_id" = String, Path, description = "`sh_…`"), RequestsQuery),
    responses((status = 200, body = [ShareRequestRecord]), (status = 401, body = islo_api::ErrorResponse),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn requests(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path((name, id)): Path<(String, String)>,
    Query(q): Query<RequestsQuery>,
) -> Result<Json<Vec<ShareRequestRecord>>, ApiError> {
    Ok(Json(s.app.share_requests(
        &t,
        &name,
        &id,
        q.limit.unwrap_or(100),
    )?))
}

/// Path and query of `req` after `prefix` (always starting with `/`).
fn rest_of(req: &Request, prefix: &str) -> String {
    let path = req.uri().path();
    let rest = path.strip_prefix(prefix).unwrap_or("");
    let rest = if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    }
}

/// `/s/{token}`: the share's root is `/s/{token}/`, so relative links resolve inside it.
pub async fn share_root(Path(token): Path<String>) -> Redirect {
    Redirect::permanent(&format!("/s/{token}/"))
}

/// `/s/{token}/…`: the public, path-based share URL (no islo credentials).
pub async fn share_path(State(s): State<HttpState>, req: Request) -> Response {
    let token = req
        .uri()
        .path()
        .trim_start_matches("/s/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let req = match super::forward::share_to_owner(&s, &token, req).await {
        Ok(carried) => return carried,
        Err(req) => req,
    };
    let path = rest_of(&req, &format!("/s/{token}"));
    serve_share(s.app.clone(), &token, path, req, true).await
}

/// Before routing: a request whose `Host` is a share's (host-based share URLs) goes to it.
pub async fn share_host(State(s): State<HttpState>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| s.app.share_token_from_host(h));
    match token {
        Some(token) => {
            let req = match super::forward::share_to_owner(&s, &token, req).await {
                Ok(carried) => return carried,
                Err(req) => req,
            };
            let path = rest_of(&req, "");
            serve_share(s.app.clone(), &token, path, req, false).await
        }
        None => next.run(req).await,
    }
}

/// `own_origin`: served on islod's own origin (a path-based URL), where the dashboard lives.
async fn serve_share(
    app: Arc<crate::app::App>,
    token: &str,
    path: String,
    req: Request,
    own_origin: bool,
) -> Response {
    let target = match app.share_target(token) {
        Ok(t) => t,
        Err(ShareRefusal::Gone) => {
            return proxy::page(
                StatusCode::NOT_FOUND,
                "No such share",
                "This share link does not exist, has expired or was revoked.",
            );
        }
        Err(ShareRefusal::NotRunning(status)) => {
            return proxy::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The sandbox is not running",
                &format!(
                    "The shared sandbox is {}; its owner can start it again.",
                    status.as_str()
                ),
            );
        }
    };
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "local".to_string(), |c| c.0.to_string());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let record = ShareRequestRecord {
        id: 0,
        share_id: target.share_id.clone(),
        at: crate::store::now_rfc3339(),
        client,
        user_agent,
        method: req.method().to_string(),
        path: path.split('?').next().unwrap_or("/").to_string(),
        status: 0,
        bytes_in: 0,
        bytes_out: 0,
    };
    let left = (target.expires - time::OffsetDateTime::now_utc()).unsigned_abs();
    let f = Forward {
        meter: Some(Meter::new(app.clone(), record)),
        app,
        sandbox: target.sandbox,
        port: target.port,
        path,
        strip_auth: false,
        own_origin,
        deadline: Deadline {
            revoked: Some(target.revoked),
            expires: Some(tokio::time::Instant::now() + left),
        },
    };
    proxy::forward(f, req).await
}

/// The port and path of an authenticated proxy request.
#[derive(Debug, serde::Deserialize)]
pub struct ProxyPath {
    sandbox_name: String,
    port: String,
}

/// `…/proxy/{port}` and `…/ws-proxy/{port}`, and any path below them: the sandbox's port,
/// for its owner (islo's `Authorization` is not passed on).
#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/proxy/{port}",
    params(("sandbox_name" = String, Path, description = "The sandbox's name"),
           ("port" = u16, Path, description = "TCP port inside; any path below is proxied too")),
    responses((status = 200, description = "What the server inside answers"),
              (status = 401, body = islo_api::ErrorResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 502, description = "Nothing listens on the port")))]
pub async fn proxy(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(p): Path<ProxyPath>,
    req: Request,
) -> Result<Response, ApiError> {
    let port = p
        .port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| AppError::Validation(format!("port must be 1-65535, got {}", p.port)))?;
    let sandbox = s.app.awake(&t, &p.sandbox_name).await?;
    let full = req.uri().path().to_string();
    let cut = full
        .find(&format!("proxy/{}", p.port))
        .map_or(full.len(), |i| i + "proxy/".len() + p.port.len());
    let path = rest_of(&req, &full[..cut]);
    let f = Forward {
        app: s.app.clone(),
        sandbox,
        port,
        path,
        strip_auth: true,
        own_origin: true,
        deadline: Deadline::default(),
        meter: None,
    };
    Ok(proxy::forward(f, req).await.into_response())
}

/// The WebSocket form of [`proxy`] (the same proxy: upgrades pass through either).
#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/ws-proxy/{port}",
    params(("sandbox_name" = String, Path, description = "The sandbox's name"),
           ("port" = u16, Path, description = "TCP port inside; any path below is proxied too")),
    responses((status = 101, description = "The WebSocket inside, carried"),
              (status = 401, body = islo_api::ErrorResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 502, description = "Nothing listens on the port")))]
pub async fn ws_proxy(
    s: State<HttpState>,
    t: Extension<Tenant>,
    p: Path<ProxyPath>,
    req: Request,
) -> Result<Response, ApiError> {
    proxy(s, t, p, req).await
}
