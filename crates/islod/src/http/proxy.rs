//! The reverse proxy to a port inside a sandbox, through the same agent relay port-forward
//! uses: shares (public, by an unguessable token in the path or the host name) and the
//! authenticated `…/proxy/{port}/…` and `…/ws-proxy/{port}/…` routes. HTTP/1.1 with
//! upgrades, so WebSockets pass too. Answers it makes itself are small HTML pages.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use islo_api::ShareRequestRecord;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::app::App;
use crate::store::SandboxRow;

/// When a proxied connection must end (a share revoked or expired); never, by default.
#[derive(Clone, Default)]
pub struct Deadline {
    pub revoked: Option<watch::Receiver<bool>>,
    pub expires: Option<tokio::time::Instant>,
}

impl Deadline {
    fn reached(self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let revoked = async {
                match self.revoked {
                    Some(mut rx) => {
                        let _ = rx.wait_for(|cut| *cut).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let expiry = async {
                match self.expires {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! { () = revoked => {}, () = expiry => {} }
        })
    }
}

/// A request's record, written when the last part of its exchange (request body, response
/// body, WebSocket) is done.
pub struct Meter {
    app: Arc<App>,
    record: Mutex<ShareRequestRecord>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Meter {
    pub fn new(app: Arc<App>, record: ShareRequestRecord) -> Arc<Self> {
        Arc::new(Self {
            app,
            record: Mutex::new(record),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        })
    }

    fn status(&self, status: StatusCode) {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).status = status.as_u16();
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let mut r = self
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        r.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        r.bytes_out = self.bytes_out.load(Ordering::Relaxed);
        let app = self.app.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(move || app.record_share_request(r));
            }
            Err(_) => app.record_share_request(r),
        }
    }
}

/// One request to proxy.
pub struct Forward {
    pub app: Arc<App>,
    pub sandbox: SandboxRow,
    pub port: u16,
    /// Path and query to ask for inside.
    pub path: String,
    /// Drop `Authorization` (it carried islo's own credential).
    pub strip_auth: bool,
    /// Served on islod's own origin (path-based shares, `…/proxy/…`), where the dashboard's
    /// session cookie lives: the page runs in an opaque origin of its own (CSP `sandbox`), so
    /// what a sandbox serves can never act with that session.
    pub own_origin: bool,
    pub deadline: Deadline,
    pub meter: Option<Arc<Meter>>,
}

/// islo's own cookies: the dashboard's session and `islo dashboard`'s secret.
const ISLO_COOKIES: [&str; 2] = [islo_api::ui::SESSION_COOKIE, islo_api::ui::LOCAL_COOKIE];

fn is_islo_cookie(pair: &str) -> bool {
    let name = pair.split('=').next().unwrap_or_default().trim();
    ISLO_COOKIES.contains(&name)
}

/// A request to a sandbox carries none of islo's cookies (a browser sends them with every
/// request to islod's origin, shares included).
fn strip_islo_cookies(h: &mut HeaderMap) {
    let kept: Vec<String> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !is_islo_cookie(c))
        .map(str::to_string)
        .collect();
    h.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&kept.join("; "))
        && !kept.is_empty()
    {
        h.insert(header::COOKIE, v);
    }
}

/// What a sandbox answers may not set islo's cookies, and on islod's own origin it runs
/// sandboxed (scripts, forms and pop-ups work; the origin is its own).
fn guard_response(h: &mut HeaderMap, own_origin: bool) {
    let kept: Vec<HeaderValue> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !v.to_str().is_ok_and(is_islo_cookie))
        .cloned()
        .collect();
    h.remove(header::SET_COOKIE);
    for v in kept {
        h.append(header::SET_COOKIE, v);
    }
    if own_origin {
        h.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads",
            ),
        );
    }
}

/// Headers that belong to one hop (RFC 9110 §7.6.1), never forwarded.
const HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

pub(super) fn wants_upgrade(h: &HeaderMap) -> bool {
    h.get(header::UPGRADE).is_some()
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

pub(super) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, upgrade: bool) {
    for (k, v) in from {
        if !HOP.contains(&k.as_str()) && (upgrade || k != header::UPGRADE) {
            to.append(k.clone(), v.clone());
        }
    }
    if upgrade {
        to.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// A small HTML page for answers the proxy makes itself.
pub fn page(status: StatusCode, title: &str, detail: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1>\
         <p>{d}</p><p style=\"color:#888\">islo</p></body></html>\n",
        t = esc(title),
        d = esc(detail)
    );
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// Proxy `req` to the port inside the sandbox.
pub async fn forward(f: Forward, mut req: Request) -> Response {
    let upgrade = wants_upgrade(req.headers());
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));
    let resp = exchange(&f, req, upgrade).await;
    let mut resp = match resp {
        Ok(r) => r,
        Err(page) => {
            if let Some(m) = &f.meter {
                m.status(page.status());
            }
            return page;
        }
    };
    if let Some(m) = &f.meter {
        m.status(resp.status());
    }
    let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(client_side)) = (switched, client_side) {
        let inside = hyper::upgrade::on(&mut resp);
        let (deadline, meter) = (f.deadline.clone(), f.meter.clone());
        tokio::spawn(async move {
            if let (Ok(c), Ok(s)) = (client_side.await, inside.await) {
                tunnel(TokioIo::new(c), TokioIo::new(s), deadline, meter).await;
            }
        });
    }
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::empty());
    *out.status_mut() = parts.status;
    copy_headers(&parts.headers, out.headers_mut(), switched);
    guard_response(out.headers_mut(), f.own_origin);
    let meter = f.meter.clone();
    let data = http_body_util::BodyDataStream::new(body).inspect(move |chunk| {
        if let (Some(m), Ok(b)) = (&meter, chunk) {
            m.bytes_out.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
    });
    *out.body_mut() = Body::from_stream(cut_at(data, f.deadline.clone()));
    out
}

/// `data` until its end, or an error at the deadline: an error (not an end) makes the
/// server drop the client's connection, which is what cutting it means.
fn cut_at<S, E>(
    data: S,
    deadline: Deadline,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let state = Some((Box::pin(data), deadline.reached()));
    futures_util::stream::unfold(state, |st| async move {
        let (mut data, mut end) = st?;
        tokio::select! {
            item = data.next() => {
                let item = item?.map_err(|e| std::io::Error::other(e.to_string()));
                Some((item, Some((data, end))))
            }
            () = &mut end => Some((Err(std::io::Error::other("the share ended")), None)),
        }
    })
}

/// Connect, send the request and read the response head.
async fn exchange(
    f: &Forward,
    req: Request,
    upgrade: bool,
) -> Result<hyper::Response<hyper::body::Incoming>, Response> {
    let name = &f.sandbox.name;
    let stream = f
        .app
        .connect_port_of(&f.sandbox, f.port)
        .await
        .map_err(|e| {
            page(
                StatusCode::BAD_GATEWAY,
                "Nothing answers on that port",
                &format!(
                    "Sandbox {name} has nothing listening on port {} ({e}). Start the server \
                     inside it, listening on that port.",
                    f.port
                ),
            )
        })?;
    let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(|e| bad_gateway(name, f.port, &e))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let (parts, body) = req.into_parts();
    let mut out = hyper::Request::new(Body::empty());
    *out.method_mut() = parts.method;
    *out.uri_mut() = f.path.parse().map_err(|_| {
        page(
            StatusCode::BAD_REQUEST,
            "Bad path",
            "The path is not a valid URI.",
        )
    })?;
    copy_headers(&parts.headers, out.headers_mut(), upgrade);
    let h = out.headers_mut();
    if f.strip_auth {
        h.remove(header::AUTHORIZATION);
    }
    strip_islo_cookies(h);
    if let Some(host) = parts.headers.get(header::HOST) {
        h.insert("x-forwarded-host", host.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&format!("localhost:{}", f.port)) {
        h.insert(header::HOST, v);
    }
    let meter = f.meter.clone();
    let counted = body.into_data_stream().inspect(move |chunk| {
        if let (Some(m), Ok(b)) = (&meter, chunk) {
            m.bytes_in.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
    });
    *out.body_mut() = Body::from_stream(counted);
    send.send_request(out)
        .await
        .map_err(|e| bad_gateway(name, f.port, &e))
}

fn bad_gateway(name: &str, port: u16, e: &hyper::Error) -> Response {
    page(
        StatusCode::BAD_GATEWAY,
        "The server inside did not answer",
        &format!("The server on port {port} of sandbox {name} closed the connection: {e}."),
    )
}

/// Carry an upgraded connection both ways until either side ends or the deadline passes.
pub(super) async fn tunnel(
    client: impl AsyncRead + AsyncWrite + Send + 'static,
    inside: impl AsyncRead + AsyncWrite + Send + 'static,
    deadline: Deadline,
    meter: Option<Arc<Meter>>,
) {
    let (cr, cw) = tokio::io::split(client);
    let (ir, iw) = tokio::io::split(inside);
    let count_in = meter.clone().map(|m| (m, true));
    let count_out = meter.map(|m| (m, false));
    let both = async {
        tokio::join!(pump(cr, iw, count_in), pump(ir, cw, count_out));
    };
    tokio::select! { () = both => {}, () = deadline.reached() => {} }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    meter: Option<(Arc<Meter>, bool)>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if let Some((m, inbound)) = &meter {
            let c = if *inbound { &m.bytes_in } else { &m.bytes_out };
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind_unless_upgrading() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-app", HeaderValue::from_static("1"));
        assert!(wants_upgrade(&h));
        let mut plain = HeaderMap::new();
        copy_headers(&h, &mut plain, false);
        assert_eq!(plain.len(), 1, "{plain:?}");
        let mut up = HeaderMap::new();
        copy_headers(&h, &mut up, true);
        assert_eq!(up.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(up.get(header::CONNECTION).unwrap(), "upgrade");
        assert!(up.get("keep-alive").is_none());
    }

    #[test]
    fn pages_escape_what_they_show() {
        let r = page(StatusCode::BAD_GATEWAY, "<t>", "a & <b>");
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
}

#[cfg(test)]
mod cookie_tests {
    use super::*;

    #[test]
    fn islo_cookies_never_reach_a_sandbox() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; islo_session=tok; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("islo_local=sec"));
        strip_islo_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("islo_session=tok"));
        strip_islo_cookies(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }

    #[test]
    fn a_sandbox_cannot_set_islo_cookies_and_runs_sandboxed_on_our_origin() {
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("islo_session=evil; Path=/"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("app=1; Path=/"),
        );
        guard_response(&mut h, true);
        let set: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(set, ["app=1; Path=/"]);
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("sandbox ")
        );
        let mut other = HeaderMap::new();
        guard_response(&mut other, false);
        assert!(other.get(header::CONTENT_SECURITY_POLICY).is_none());
    }
}
