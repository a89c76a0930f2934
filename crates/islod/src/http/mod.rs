//! The HTTP API (axum): routes, authentication, the error mapping and OpenAPI.
//!
//! Handlers are thin: they authenticate (middleware), decode, call [`crate::app::App`] and
//! encode. Every error leaves through [`error::ApiError`], the one mapping to an HTTP answer.

mod auth;
mod creation;
mod environments;
mod error;
mod exec;
mod files;
mod forward;
mod gateway;
mod keys;
mod logs;
pub mod openapi;
mod port_forward;
mod proxy;
mod pty;
mod routes;
mod sandboxes;
mod secrets;
mod shares;
mod snapshots;
mod sse;
mod ssh;
mod system;
mod ui;
mod watch;
mod webhooks;

use std::sync::Arc;

use axum::Router;

use crate::app::App;

pub use auth::{hash_secret, new_api_key};
pub use error::ApiError;

/// How a request reached the server. A unix-socket caller with no bearer token is the
/// local user (the socket's mode, 0600, is the boundary); TCP callers always authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
    /// The cluster's node listener: peers proved they are nodes (mutual TLS) and name the
    /// tenant they act for.
    Node,
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
    let (routes, _) = routes::api(Some(state.clone())).split_for_parts();
    let exact: Router = routes
        .clone()
        .fallback(error::not_found)
        .with_state(state.clone());
    routes
        .fallback(move |req: axum::extract::Request| without_trailing_slash(exact, req))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            shares::share_host,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cluster_sync,
        ))
        .with_state(state)
}

/// On a cluster's node, bring its copy of the shared state up to date before answering, so a
/// write made through any node is seen by the next request to any other (once per request:
/// not again on the node a request is carried to).
async fn cluster_sync(
    axum::extract::State(s): axum::extract::State<HttpState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if s.app.clustered() {
        let app = s.app.clone();
        // A node that carried a request here says what it had seen: this node catches up to
        // that without asking etcd again.
        let seen = (s.transport == Transport::Node)
            .then(|| {
                req.headers()
                    .get(forward::APPLIED)?
                    .to_str()
                    .ok()?
                    .parse::<u64>()
                    .ok()
            })
            .flatten();
        let _ = tokio::task::spawn_blocking(move || match seen {
            Some(seq) => app.sync_state_to(seq),
            None => app.sync_state(),
        })
        .await;
    }
    next.run(req).await
}

/// A path no route has, ending in `/` (`/sandboxes/`, as the TypeScript SDK calls it): the
/// same path without the slash, else 404.
async fn without_trailing_slash(
    exact: Router,
    mut req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
            return match tower::ServiceExt::oneshot(exact, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
        }
    }
    error::not_found(req.uri().clone()).await.into_response()
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
