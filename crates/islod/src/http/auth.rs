//! Bearer authentication: API keys (stored hashed) exchanged for short-lived session tokens.

use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use islo_api::{TokenRequest, TokenResponse};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiJson};
use super::{HttpState, Transport};
use crate::app::{AppError, Tenant};

/// Lifetime of a session token.
pub const TOKEN_TTL_SECS: u64 = 600;

/// Hex SHA-256 of a secret (keys and tokens are random and long: a fast hash suffices).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A new API key (shown once; only its hash is stored).
pub fn new_api_key() -> String {
    format!("islo_key_{}", random_hex(24))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Resolve a bearer credential: a session token, or (accepted too) an API key.
pub(super) fn authenticate(state: &HttpState, bearer: &str) -> Result<Tenant, ApiError> {
    state
        .app
        .tenant_for_secret(&hash_secret(bearer), now())?
        .ok_or(ApiError(AppError::Unauthorized))
}

/// Middleware: every protected route needs a tenant.
pub async fn require(
    State(state): State<HttpState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let cookie = super::ui::session_cookie(req.headers());
    if state.transport == Transport::Node {
        let who = forwarded_tenant(req.headers()).ok_or(ApiError(AppError::Unauthorized))?;
        req.extensions_mut().insert(who);
        return Ok(next.run(req).await);
    }
    let who = match header.and_then(|h| h.strip_prefix("Bearer ")) {
        Some(token) => authenticate(&state, token.trim())?,
        // The dashboard's session: only from its own pages (never a cross-site request).
        None if header.is_none() && cookie.is_some() => {
            super::ui::same_site(&req).map_err(|m| ApiError(AppError::Forbidden(m.into())))?;
            authenticate(&state, cookie.as_deref().unwrap_or_default())?
        }
        None if state.transport == Transport::Unix && header.is_none() => {
            state.local_tenant.clone()
        }
        None => {
            tracing::info!(target: "audit", transport = ?state.transport, "unauthenticated request refused");
            return Err(ApiError(AppError::Unauthorized));
        }
    };
    req.extensions_mut().insert(who);
    Ok(next.run(req).await)
}

/// A new session token for API key `key` valid `ttl` seconds, if the key is known and active.
pub fn session_for_key(state: &HttpState, key: &str, ttl: u64) -> Result<Option<String>, ApiError> {
    let token = format!("islo_st_{}", random_hex(32));
    let expires = now() + ttl as i64;
    if state
        .app
        .issue_token(&hash_secret(key), &hash_secret(&token), expires)?
    {
        Ok(Some(token))
    } else {
        tracing::info!(target: "audit", "token exchange refused: unknown key");
        Ok(None)
    }
}

/// `POST /auth/token`: exchange an API key for a session token.
#[utoipa::path(post, path = "/auth/token", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = islo_api::ErrorResponse)))]
pub async fn token(
    State(state): State<HttpState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let token = session_for_key(&state, &req.access_key, TOKEN_TTL_SECS)?
        .ok_or(ApiError(AppError::Unauthorized))?;
    Ok(Json(TokenResponse {
        session_token: token,
        cookie_max_age: TOKEN_TTL_SECS,
    }))
}

/// The tenant a node names on a request it carried here (trusted on the node listener only,
/// whose peers proved with their certificate that they are nodes).
fn forwarded_tenant(h: &axum::http::HeaderMap) -> Option<Tenant> {
    let get = |k: &str| h.get(k)?.to_str().ok().map(str::to_string);
    Some(Tenant {
        id: get(super::forward::TENANT_ID)?,
        name: get(super::forward::TENANT_NAME)?,
    })
}
