//! SSH: certificate signing and the per-sandbox SSH WebSocket (`islo ssh proxy`).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use islo_api::{SshCertificateRequest, SshCertificateResponse};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use crate::app::{AppError, Tenant};
use crate::ssh::ca::{DEFAULT_TTL_SECS, MAX_TTL_SECS};

#[utoipa::path(post, path = "/ssh/certificates", request_body = SshCertificateRequest,
    responses((status = 200, body = SshCertificateResponse), (status = 422, body = islo_api::ErrorResponse)))]
pub async fn sign(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    ApiJson(req): ApiJson<SshCertificateRequest>,
) -> Result<Json<SshCertificateResponse>, ApiError> {
    let ttl = req.ttl_seconds.unwrap_or(DEFAULT_TTL_SECS);
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        let m = format!("ttl_seconds must be 1 to {MAX_TTL_SECS}, got {ttl}");
        return Err(AppError::Validation(m).into());
    }
    let ca = s
        .ssh
        .get()
        .map_err(|e| AppError::Internal(format!("ssh keys: {e}")))?;
    let user = s.app.settings.user.clone();
    let principals = vec![user.clone(), "root".to_string()];
    let refs: Vec<&str> = principals.iter().map(String::as_str).collect();
    let cert = ca
        .sign_user(&req.public_key, &t.id, &refs, ttl)
        .map_err(|e| AppError::Validation(e.to_string()))?;
    let valid_before = time::OffsetDateTime::from_unix_timestamp(cert.valid_before() as i64)
        .ok()
        .and_then(|v| {
            v.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    tracing::info!(tenant = %t.name, ttl, "ssh certificate signed");
    Ok(Json(SshCertificateResponse {
        certificate: cert
            .to_openssh()
            .map_err(|e| AppError::Internal(e.to_string()))?,
        principals,
        valid_before,
        host_ca_public_key: ca.host_ca_public(),
    }))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/ssh",
    responses((status = 101, description = "WebSocket carrying one SSH connection (protocol islo.tcp.v1)"),
              (status = 404, body = islo_api::ErrorResponse), (status = 409, body = islo_api::ErrorResponse)))]
pub async fn connect(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    s.app.awake(&t, &name).await?;
    let ca = s
        .ssh
        .get()
        .map_err(|e| AppError::Internal(format!("ssh keys: {e}")))?;
    Ok(ws
        .protocols([super::port_forward::SUBPROTOCOL])
        .on_upgrade(move |socket| async move {
            let (ours, theirs) = tokio::io::duplex(256 * 1024);
            let app = s.app.clone();
            let server = tokio::spawn(async move {
                if let Err(e) = crate::ssh::serve(app, ca, t, name.clone(), theirs).await {
                    tracing::info!(sandbox = %name, error = %e, "ssh connection ended");
                }
            });
            super::port_forward::carry(socket, ours).await;
            server.abort();
        }))
}
