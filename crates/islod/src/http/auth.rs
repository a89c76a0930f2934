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

fn tenant(state: &HttpState, id: String) -> Result<Tenant, ApiError> {
    let name = state
        .app
        .store
        .tenant_name(&id)
        .map_err(AppError::from)?
        .unwrap_or_default();
    Ok(Tenant { id, name })
}

/// Resolve a bearer credential: a session token, or (accepted too) an API key.
fn authenticate(state: &HttpState, bearer: &str) -> Result<Tenant, ApiError> {
    let h = hash_secret(bearer);
    let store = &state.app.store;
    let id = match store.tenant_for_token(&h, now()).map_err(AppError::from)? {
        Some(id) => id,
        None => store
            .tenant_for_key(&h)
            .map_err(AppError::from)?
            .ok_or(ApiError(AppError::Unauthorized))?,
    };
    tenant(state, id)
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
    let who = match header.and_then(|h| h.strip_prefix("Bearer ")) {
        Some(token) => authenticate(&state, token.trim())?,
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

/// `POST /auth/token`: exchange an API key for a session token.
#[utoipa::path(post, path = "/auth/token", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = islo_api::ErrorResponse)))]
pub async fn token(
    State(state): State<HttpState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let store = &state.app.store;
    let Some(tenant_id) = store
        .tenant_for_key(&hash_secret(&req.access_key))
        .map_err(AppError::from)?
    else {
        tracing::info!(target: "audit", "token exchange refused: unknown key");
        return Err(ApiError(AppError::Unauthorized));
    };
    let token = format!("islo_st_{}", random_hex(32));
    store
        .insert_token(
            &hash_secret(&token),
            &tenant_id,
            now() + TOKEN_TTL_SECS as i64,
        )
        .map_err(AppError::from)?;
    Ok(Json(TokenResponse {
        session_token: token,
        cookie_max_age: TOKEN_TTL_SECS,
    }))
}
