//! The HTTP API (axum): routes, authentication, the error mapping and OpenAPI.
//!
//! Handlers are thin: they authenticate (middleware), decode, call [`crate::app::App`] and
//! encode. Every error leaves through [`error::ApiError`], the one mapping to an HTTP answer.

mod auth;
mod error;
mod exec;
mod files;
mod gateway;
mod logs;
pub mod openapi;
mod port_forward;
mod pty;
mod sandboxes;
mod secrets;
mod snapshots;
mod sse;
mod ssh;
mod system;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::app::App;

pub use auth::{hash_secret, new_api_key};
pub use error::ApiError;

/// How a request reached the server. A unix-socket caller with no bearer token is the
/// local user (the socket's mode, 0600, is the boundary); TCP callers always authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct HttpState {
    pub app: Arc<App>,
    pub transport: Transport,
    /// Tenant of unauthenticated local (unix socket) callers.
    pub local_tenant: crate::app::Tenant,
    /// The SSH authorities, for certificates and the SSH front door.
    pub ssh: Arc<crate::ssh::LazyCa>,
}

/// The whole API.
pub fn router(state: HttpState) -> Router {
    let protected = Router::new()
        .route("/sandboxes", get(sandboxes::list).post(sandboxes::create))
        .route("/sandboxes/-/by-id/{id}", get(sandboxes::get_by_id))
        .route(
            "/sandboxes/{name}",
            get(sandboxes::get).delete(sandboxes::delete),
        )
        .route("/sandboxes/{name}/stop", post(sandboxes::stop))
        .route("/sandboxes/{name}/resume", post(sandboxes::resume))
        .route("/sandboxes/{name}/exec", post(exec::start).get(pty::exec))
        .route(
            "/sandboxes/{name}/sessions",
            get(pty::list).post(pty::create),
        )
        .route(
            "/sandboxes/{name}/sessions/{session}",
            axum::routing::delete(pty::kill),
        )
        .route(
            "/sandboxes/{name}/sessions/{session}/attach",
            get(pty::attach),
        )
        .route("/sandboxes/{name}/port-forward", get(port_forward::forward))
        .route("/sandboxes/{name}/exec/stream", post(exec::stream))
        .route("/sandboxes/{name}/exec/{exec_id}", get(exec::result))
        .route("/sandboxes/{name}/exec-sessions", get(logs::list))
        .route("/sandboxes/{name}/exec-sessions/{exec_id}", get(logs::one))
        .route(
            "/sandboxes/{name}/exec-sessions/{exec_id}/logs",
            get(logs::logs),
        )
        .route(
            "/sandboxes/{name}/exec-sessions/{exec_id}/asciinema",
            get(logs::asciinema),
        )
        .route(
            "/sandboxes/{name}/agent-sessions",
            get(logs::agent_sessions),
        )
        .route(
            "/sandboxes/{name}/agent-sessions/{session_name}/events",
            get(logs::agent_events),
        )
        .route("/snapshots", get(snapshots::list).post(snapshots::create))
        .route("/snapshots/", get(snapshots::list).post(snapshots::create))
        .route("/snapshots/import", post(snapshots::import))
        .route(
            "/snapshots/{name}",
            get(snapshots::get).delete(snapshots::delete),
        )
        .route("/snapshots/{name}/export", get(snapshots::export))
        .route(
            "/sandboxes/{name}/files",
            get(files::download)
                .post(files::upload)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/sandboxes/{name}/files-archive",
            get(files::download_archive)
                .post(files::upload_archive)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/gateway/profiles",
            get(gateway::list).post(gateway::create),
        )
        .route(
            "/gateway/profiles/{profile_id}",
            get(gateway::get)
                .patch(gateway::update)
                .delete(gateway::delete),
        )
        .route(
            "/gateway/profiles/{profile_id}/rules",
            post(gateway::add_rule),
        )
        .route(
            "/gateway/profiles/{profile_id}/rules/reorder",
            post(gateway::reorder),
        )
        .route(
            "/gateway/profiles/{profile_id}/rules/{rule_id}",
            axum::routing::patch(gateway::update_rule).delete(gateway::delete_rule),
        )
        .route("/secrets", get(secrets::list))
        .route(
            "/secrets/{name}",
            axum::routing::put(secrets::put).delete(secrets::delete),
        )
        .route("/sandboxes/{sandbox}/gateway-events", get(secrets::events))
        .route("/ssh/certificates", post(ssh::sign))
        .route("/sandboxes/{name}/ssh", get(ssh::connect))
        .route("/images/pull", post(system::pull))
        .route("/system", get(system::info))
        .route("/agents", get(system::agents))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    Router::new()
        .route("/auth/token", post(auth::token))
        .route("/openapi.json", get(system::openapi))
        .merge(protected)
        .fallback(error::not_found)
        .with_state(state)
}

/// A file as a response body, read in chunks.
pub(super) fn file_body(file: std::fs::File) -> axum::body::Body {
    let file = tokio::fs::File::from_std(file);
    axum::body::Body::from_stream(futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match tokio::io::AsyncReadExt::read(&mut f, &mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    }))
}
