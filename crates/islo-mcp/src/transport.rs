//! Serving the MCP server: on standard input/output (one client, the one that started us),
//! or over the streamable HTTP transport at `/mcp`.
//!
//! HTTP reaches islod with the operator's credentials, so it is guarded: on a loopback
//! address only loopback `Host`s are answered and requests from browser pages (any `Origin`)
//! are refused, against DNS rebinding; any other address needs a bearer token
//! (`ISLO_MCP_TOKEN`), which every request must then carry.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::IsloMcp;

/// Why serving stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("MCP session: {0}")]
    Session(String),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "{0} is not a loopback address: set ISLO_MCP_TOKEN to a secret that clients send as a bearer token, or listen on 127.0.0.1"
    )]
    NeedsToken(SocketAddr),
    #[error("serving HTTP: {0}")]
    Http(std::io::Error),
}

/// Serve one client on standard input and output until it leaves.
pub async fn serve_stdio(server: IsloMcp) -> Result<(), ServeError> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| ServeError::Session(e.to_string()))?;
    running
        .waiting()
        .await
        .map(drop)
        .map_err(|e| ServeError::Session(e.to_string()))
}

/// Where and how to serve HTTP.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// A bearer token every request must carry (required off loopback).
    pub token: Option<String>,
}

/// Serve the streamable HTTP transport at `/mcp` until the process ends; `ready` is told
/// the address once listening (port 0 picks one).
pub async fn serve_http(
    server: IsloMcp,
    opts: HttpOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let loopback = opts.addr.ip().is_loopback();
    if !loopback && opts.token.is_none() {
        return Err(ServeError::NeedsToken(opts.addr));
    }
    let mut config = StreamableHttpServerConfig::default().enforce_origin_validation();
    if !loopback {
        // Reached by a host name we cannot know; the token guards it instead.
        config = config.with_allowed_hosts(Vec::<String>::new());
    }
    let service: StreamableHttpService<IsloMcp, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    let mut app = axum::Router::new().nest_service("/mcp", service);
    if let Some(token) = opts.token {
        let token = Arc::new(token);
        app = app.layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let token = token.clone();
                async move { bearer(&token, req, next).await }
            },
        ));
    }
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(ServeError::Http)?;
    ready(local);
    axum::serve(listener, app).await.map_err(ServeError::Http)
}

async fn bearer(token: &str, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if islo_api::ui::same_secret(t.as_bytes(), token.as_bytes()) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this MCP server needs `Authorization: Bearer <ISLO_MCP_TOKEN>`\n",
        )
            .into_response(),
    }
}
