//! A request for a sandbox that lives on another node, carried to that node: plain HTTP,
//! SSE and WebSocket upgrades alike, over mutual TLS (`cluster::tls`), with the caller's
//! tenant named in headers the node listener alone trusts.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::error::ApiError;
use super::proxy::{Deadline, copy_headers, tunnel, wants_upgrade};
use super::{HttpState, Transport};
use crate::app::{AppError, Tenant};

/// Headers a node sets on a request it carries (and the node listener reads; stripped from
/// anything else).
pub const TENANT_ID: &str = "x-islo-tenant-id";
pub const TENANT_NAME: &str = "x-islo-tenant-name";
pub const FORWARDED_BY: &str = "x-islo-forwarded-by";

/// The sandbox a request must be served by the node holding it for: anything under
/// `/sandboxes/{ref}/`, and `/sandboxes/{ref}` itself but for reading its record (shared,
/// so any node answers it, also while its node is lost).
fn sandbox_ref(method: &axum::http::Method, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/sandboxes/")?;
    let (r, under) = match rest.split_once('/') {
        Some((r, under)) => (r, !under.is_empty()),
        None => (rest, false),
    };
    if r.is_empty() || r == "-" || (!under && method == axum::http::Method::GET) {
        return None;
    }
    Some(r.to_string())
}

/// Middleware (after authentication): a request about a sandbox on another node goes there.
pub async fn to_owner(State(s): State<HttpState>, req: Request, next: Next) -> Response {
    if s.transport == Transport::Node || !s.app.clustered() {
        return next.run(req).await;
    }
    let (Some(sref), Some(t)) = (
        sandbox_ref(req.method(), req.uri().path()),
        req.extensions().get::<Tenant>().cloned(),
    ) else {
        return next.run(req).await;
    };
    let app = s.app.clone();
    let tenant = t.clone();
    let owner = tokio::task::spawn_blocking(move || app.owner_elsewhere(&tenant, &sref)).await;
    let (node, address) = match owner {
        Ok(Ok(Some(o))) => o,
        Ok(Ok(None)) => return next.run(req).await,
        Ok(Err(e)) => return ApiError(e).into_response(),
        Err(e) => return ApiError(AppError::Join(e)).into_response(),
    };
    let Some(address) = address else {
        return ApiError(AppError::ClusterUnavailable(format!(
            "this sandbox lives on node {node}, which is not answering (its registration lapsed); \
             its files are on that node: try again when it is back"
        )))
        .into_response();
    };
    let Some(tls) = s.app.node_client_tls() else {
        return next.run(req).await;
    };
    let me = s.app.node_name().unwrap_or_default();
    carry(req, &t, &node, &address, &me, tls).await
}

/// POST `body` as JSON to `path` on `node` at `address`, for tenant `t`.
pub async fn carry_json(
    s: &HttpState,
    t: &Tenant,
    node: &str,
    address: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> Response {
    let (Some(tls), Ok(bytes)) = (s.app.node_client_tls(), serde_json::to_vec(body)) else {
        return ApiError(AppError::Internal(
            "carrying a request to another node".into(),
        ))
        .into_response();
    };
    let mut req = Request::new(Body::from(bytes));
    *req.method_mut() = axum::http::Method::POST;
    *req.uri_mut() = path.parse().unwrap_or_default();
    req.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let me = s.app.node_name().unwrap_or_default();
    carry(req, t, node, address, &me, tls).await
}

/// Send `req` to `node` at `address` and hand its answer (or upgraded connection) back.
async fn carry(
    mut req: Request,
    t: &Tenant,
    node: &str,
    address: &str,
    me: &str,
    tls: crate::cluster::tls::PeerTls,
) -> Response {
    let down = |e: String| {
        ApiError(AppError::ClusterUnavailable(format!(
            "this sandbox lives on node {node}, which could not be reached at {address}: {e}"
        )))
        .into_response()
    };
    let stream = match super::super::cluster::tls::connect(address, tls).await {
        Ok(s) => s,
        Err(e) => return down(e.to_string()),
    };
    let (mut send, conn) =
        match hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await {
            Ok(x) => x,
            Err(e) => return down(e.to_string()),
        };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let upgrade = wants_upgrade(req.headers());
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut out = hyper::Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .unwrap_or_default();
    copy_headers(&parts.headers, out.headers_mut(), upgrade);
    let h = out.headers_mut();
    h.remove(axum::http::header::AUTHORIZATION);
    h.remove(axum::http::header::COOKIE);
    for (k, v) in [
        (TENANT_ID, &t.id),
        (TENANT_NAME, &t.name),
        (FORWARDED_BY, &me.to_string()),
    ] {
        match HeaderValue::from_str(v) {
            Ok(v) => {
                h.insert(k, v);
            }
            Err(_) => return down(format!("{k} cannot be sent")),
        }
    }
    let mut resp = match send.send_request(out).await {
        Ok(r) => r,
        Err(e) => return down(e.to_string()),
    };
    let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(client_side)) = (switched, client_side) {
        let remote = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(c), Ok(r)) = (client_side.await, remote.await) {
                tunnel(TokioIo::new(c), TokioIo::new(r), Deadline::default(), None).await;
            }
        });
    }
    let (parts, body) = resp.into_parts();
    let mut back = Response::new(Body::new(body));
    *back.status_mut() = parts.status;
    copy_headers(&parts.headers, back.headers_mut(), switched);
    back
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_about_a_sandbox_name_it() {
        use axum::http::Method;
        let r = |m: &Method, p: &str| super::sandbox_ref(m, p);
        assert_eq!(
            r(&Method::DELETE, "/sandboxes/demo").as_deref(),
            Some("demo")
        );
        assert_eq!(
            r(&Method::GET, "/sandboxes/demo"),
            None,
            "records are shared"
        );
        assert_eq!(
            r(&Method::GET, "/sandboxes/demo/exec/x").as_deref(),
            Some("demo")
        );
        assert_eq!(
            r(&Method::POST, "/sandboxes/demo/stop").as_deref(),
            Some("demo")
        );
        assert_eq!(r(&Method::GET, "/sandboxes/-/by-id/x"), None);
        assert_eq!(r(&Method::GET, "/sandboxes"), None);
        assert_eq!(r(&Method::POST, "/sandboxes/"), None);
        assert_eq!(r(&Method::GET, "/snapshots/demo"), None);
    }
}
