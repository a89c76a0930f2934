//! A request for a sandbox that lives on another node, carried to that node: plain HTTP,
//! SSE and WebSocket upgrades alike, over mutual TLS (`cluster::tls`), with the caller's
//! tenant named in headers the node listener alone trusts.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
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
/// The last shared-state entry the carrying node had applied.
pub const APPLIED: &str = "x-islo-applied";

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

/// The files of a snapshot a request needs (`DELETE /snapshots/{name}`, its export).
fn snapshot_ref(method: &axum::http::Method, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/snapshots/")?;
    let (r, under) = rest.split_once('/').unwrap_or((rest, ""));
    let files = under == "export" || (under.is_empty() && method == axum::http::Method::DELETE);
    (files && !r.is_empty() && r != "import").then(|| r.to_string())
}

/// A public share URL of a sandbox on another node: the request, carried there (`Err` gives
/// it back when the sandbox is this node's, or alone).
pub async fn share_to_owner(s: &HttpState, token: &str, req: Request) -> Result<Response, Request> {
    if s.transport == Transport::Node || !s.app.clustered() {
        return Err(req);
    }
    let (app, tok) = (s.app.clone(), token.to_string());
    let owner = match tokio::task::spawn_blocking(move || app.share_elsewhere(&tok)).await {
        Ok(Ok(Some(o))) => o,
        _ => return Err(req),
    };
    let (node, address, tenant) = owner;
    let (Some(address), Some(tls)) = (address, s.app.node_client_tls()) else {
        return Ok(super::proxy::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sandbox is out of reach",
            &format!("The shared sandbox lives on node {node}, which is not answering."),
        ));
    };
    let me = s.app.node_name().unwrap_or_default();
    Ok(carry(
        req,
        &tenant,
        &node,
        &address,
        (&me, s.app.applied_seq()),
        tls,
    )
    .await)
}

/// Middleware (after authentication): a request about a sandbox (or a snapshot's files) on
/// another node goes there.
pub async fn to_owner(State(s): State<HttpState>, req: Request, next: Next) -> Response {
    if s.transport == Transport::Node || !s.app.clustered() {
        return next.run(req).await;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let target = match sandbox_ref(&method, &path) {
        Some(r) => Some((r, false)),
        None => snapshot_ref(&method, &path).map(|r| (r, true)),
    };
    let (Some((what, snapshot)), Some(t)) = (target, req.extensions().get::<Tenant>().cloned())
    else {
        return next.run(req).await;
    };
    let app = s.app.clone();
    let (tenant, name) = (t.clone(), what.clone());
    let owner = tokio::task::spawn_blocking(move || match snapshot {
        true => app.snapshot_elsewhere(&tenant, &what),
        false => app.owner_elsewhere(&tenant, &what),
    })
    .await;
    let (node, address) = match owner {
        Ok(Ok(Some(o))) => o,
        Ok(Ok(None)) => return next.run(req).await,
        Ok(Err(e)) => return ApiError(e).into_response(),
        Err(e) => return ApiError(AppError::Join(e)).into_response(),
    };
    let Some(address) = address else {
        // A snapshot in the cluster's registry is exported or removed by any node.
        let (app, tenant) = (s.app.clone(), t.clone());
        if snapshot
            && tokio::task::spawn_blocking(move || app.snapshot_travels(&tenant, &name))
                .await
                .is_ok_and(|r| r.unwrap_or(false))
        {
            return next.run(req).await;
        }
        return ApiError(AppError::ClusterUnavailable(format!(
            "this {} on node {node}, which is not answering (its registration lapsed); try \
             again when it is back",
            if snapshot {
                "snapshot's files are"
            } else {
                "sandbox lives"
            }
        )))
        .into_response();
    };
    let Some(tls) = s.app.node_client_tls() else {
        return next.run(req).await;
    };
    let me = s.app.node_name().unwrap_or_default();
    let seen = s.app.applied_seq();
    carry(req, &t, &node, &address, (&me, seen), tls).await
}

/// POST `body` as JSON to `path` on `node` at `address` (`to`), for tenant `t`, with
/// `headers` besides.
pub async fn carry_json(
    s: &HttpState,
    t: &Tenant,
    (node, address): (&str, &str),
    path: &str,
    body: &impl serde::Serialize,
    headers: &[(&str, &str)],
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
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(*k),
            HeaderValue::from_str(v),
        ) {
            req.headers_mut().insert(k, v);
        }
    }
    let me = s.app.node_name().unwrap_or_default();
    carry(req, t, node, address, (&me, s.app.applied_seq()), tls).await
}

/// Send `req` to `node` at `address` and hand its answer (or upgraded connection) back.
async fn carry(
    mut req: Request,
    t: &Tenant,
    node: &str,
    address: &str,
    (me, seen): (&str, u64),
    tls: crate::cluster::tls::PeerTls,
) -> Response {
    let down = |e: String| {
        ApiError(AppError::ClusterUnavailable(format!(
            "node {node}, which holds what this request is about, could not be reached at \
             {address}: {e}"
        )))
        .into_response()
    };
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
    let seen = seen.to_string();
    for (k, v) in [
        (TENANT_ID, &t.id),
        (TENANT_NAME, &t.name),
        (FORWARDED_BY, &me.to_string()),
        (APPLIED, &seen),
    ] {
        match HeaderValue::from_str(v) {
            Ok(v) => {
                h.insert(k, v);
            }
            Err(_) => return down(format!("{k} cannot be sent")),
        }
    }
    // A request goes on a kept-alive connection to that node when one is idle (a fresh one if
    // that turns out closed). An upgrade keeps the connection it takes, so a new one is
    // opened meanwhile for the next (the handshake is off the path of the request).
    let mut pooled = idle(address);
    if upgrade {
        let (address, tls) = (address.to_string(), tls.clone());
        tokio::spawn(async move {
            if let Ok(s) = open(&address, tls).await {
                put_back(address, s);
            }
        });
    }
    let (mut resp, send) = loop {
        let mut send = match pooled.take() {
            Some(s) => s,
            None => match open(address, tls.clone()).await {
                Ok(s) => s,
                Err(e) => return down(e),
            },
        };
        match send.try_send_request(out).await {
            Ok(r) => break (r, send),
            Err(mut e) => match e.take_message() {
                Some(again) => out = again,
                None => return down(e.into_error().to_string()),
            },
        }
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
    let mut back = if upgrade {
        Response::new(Body::new(body))
    } else {
        // The connection goes back to the pool once the answer has been read to its end.
        let back_home = Returned(Some((address.to_string(), send)));
        let data = http_body_util::BodyDataStream::new(body).map(move |chunk| {
            let _ = &back_home;
            chunk
        });
        Response::new(Body::from_stream(data))
    };
    *back.status_mut() = parts.status;
    copy_headers(&parts.headers, back.headers_mut(), switched);
    back
}

type Sender = hyper::client::conn::http1::SendRequest<Body>;

/// Idle kept-alive connections to other nodes, by address (a few each).
static IDLE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Vec<Sender>>>> =
    std::sync::LazyLock::new(Default::default);

const IDLE_PER_NODE: usize = 8;

fn idle(address: &str) -> Option<Sender> {
    let mut pool = IDLE.lock().unwrap_or_else(|p| p.into_inner());
    let list = pool.get_mut(address)?;
    while let Some(s) = list.pop() {
        if s.is_ready() {
            return Some(s);
        }
    }
    None
}

/// A new mutually authenticated HTTP/1.1 connection to the node at `address`.
async fn open(address: &str, tls: crate::cluster::tls::PeerTls) -> Result<Sender, String> {
    let stream = crate::cluster::tls::connect(address, tls)
        .await
        .map_err(|e| e.to_string())?;
    let (send, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(send)
}

/// Puts a connection back in the pool when dropped (with the answer's body), once it is
/// ready for the next request; a connection left mid-answer closes instead.
struct Returned(Option<(String, Sender)>);

impl Drop for Returned {
    fn drop(&mut self) {
        let Some((address, mut send)) = self.0.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            if send.ready().await.is_ok() {
                put_back(address, send);
            }
        });
    }
}

fn put_back(address: String, send: Sender) {
    let mut pool = IDLE.lock().unwrap_or_else(|p| p.into_inner());
    let list = pool.entry(address).or_default();
    if list.len() < IDLE_PER_NODE {
        list.push(send);
    }
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
        let s = |m: &Method, p: &str| super::snapshot_ref(m, p);
        assert_eq!(
            s(&Method::DELETE, "/snapshots/base").as_deref(),
            Some("base")
        );
        assert_eq!(
            s(&Method::GET, "/snapshots/base/export").as_deref(),
            Some("base")
        );
        assert_eq!(
            s(&Method::GET, "/snapshots/base"),
            None,
            "records are shared"
        );
        assert_eq!(s(&Method::POST, "/snapshots/import"), None);
        assert_eq!(s(&Method::POST, "/snapshots/"), None);
    }
}
