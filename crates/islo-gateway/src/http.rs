//! HTTP/1.1 inside a sandbox's connection: each request decided, limited, given its
//! credentials and re-originated; the exchange recorded when its response body ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use islo_api::EventAction;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::io::Counted;
use crate::proxy::{Shared, serve_tunnel};
use crate::rules::normalize_host;
use crate::scrub::{Scrubbed, Scrubber};
use crate::{Client, Event, inject};

type UpBody = Counted<Incoming>;

/// How long a sandbox may take to send a request's headers (a half-sent request holds a
/// connection, and islod's descriptors, for nothing). Their size is bounded by hyper's
/// connection buffer (about 400 KiB; making it smaller also shrinks the write buffer, which
/// cost a third of download throughput).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// How the connection reached HTTP.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// Terminated TLS for this SNI: every request goes to it.
    Tls(String),
    /// Plain text; requests name their host (`Host` or an absolute URI), else this one.
    Plain(Option<String>),
}

/// One sandbox connection.
struct Conn {
    peer: SocketAddr,
    origin: Origin,
    port: u16,
    sh: Arc<Shared>,
    upstream: tokio::sync::Mutex<Option<(String, u16, SendRequest<UpBody>)>>,
}

/// Serve HTTP/1.1 on `io` until the sandbox closes it.
pub(crate) async fn serve<S>(io: S, peer: SocketAddr, origin: Origin, port: u16, sh: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(Conn {
        peer,
        origin,
        port,
        sh,
        upstream: tokio::sync::Mutex::new(None),
    });
    let svc = hyper::service::service_fn(move |req| {
        let c = conn.clone();
        async move { Ok::<_, Infallible>(c.handle(req).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        // A client may shut down its sending side once the request is out (`nc`, scripts):
        // it still gets its answer. Without this hyper dropped the request when the FIN
        // arrived before the answer was ready, and nothing was answered or logged.
        .half_close(true)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(peer = %peer, error = %e, "gateway connection ended");
    }
}

fn full(status: StatusCode, content_type: &str, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert("x-islo-gateway", HeaderValue::from_static("1"));
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<ProxyBody> {
    full(status, "application/json", format!("{v}\n"))
}

/// `host[:port]` split; the port defaults to `default`.
fn split_authority(a: &str, default: u16) -> (String, u16) {
    let host = normalize_host(a);
    let port = a
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with(']') || a.starts_with('['))
        .and_then(|(_, p)| p.parse().ok())
        .filter(|_| a.matches(':').count() == 1 || a.starts_with('['))
        .unwrap_or(default);
    (host, port)
}

impl Conn {
    /// The host and port a request is for.
    fn target(&self, req: &Request<Incoming>) -> Result<(String, u16), Box<Response<ProxyBody>>> {
        let bad = |msg: &str| {
            Err(Box::new(full(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("islo gateway: {msg}\n"),
            )))
        };
        let mut hosts = req.headers().get_all(HOST).iter();
        let header = match (hosts.next(), hosts.next()) {
            (_, Some(_)) => return bad("more than one Host header"),
            (None, None) => None,
            (Some(v), None) => match v.to_str().ok().filter(|h| valid_host_header(h)) {
                Some(h) => Some(h),
                None => return bad("the Host header is not a host[:port]"),
            },
        };
        match &self.origin {
            Origin::Tls(sni) => {
                if let Some(h) = header
                    && normalize_host(h) != normalize_host(sni)
                {
                    let msg = format!(
                        "islo gateway: Host {h} does not match the TLS server name {sni}\n"
                    );
                    return Err(Box::new(full(
                        StatusCode::MISDIRECTED_REQUEST,
                        "text/plain",
                        msg,
                    )));
                }
                Ok((normalize_host(sni), self.port))
            }
            Origin::Plain(hint) => {
                let authority = req
                    .uri()
                    .authority()
                    .map(|a| a.as_str().to_string())
                    .or_else(|| header.map(str::to_string))
                    .or_else(|| hint.clone());
                match authority {
                    Some(a) => Ok(split_authority(&a, self.port)),
                    None => bad("the request names no host"),
                }
            }
        }
    }

    fn event(&self, c: &Client, req: &Request<Incoming>, host: &str, path: &str) -> Event {
        Event {
            sandbox_id: c.sandbox_id.clone(),
            tenant_id: c.tenant_id.clone(),
            at: SystemTime::now(),
            peer: self.peer,
            scheme: if matches!(self.origin, Origin::Tls(_)) {
                "https"
            } else {
                "http"
            },
            host: host.to_string(),
            method: req.method().to_string(),
            path: path.to_string(),
            rule_id: None,
            action: EventAction::Allow,
            status: 0,
            bytes_up: 0,
            bytes_down: 0,
            latency_ms: 0.0,
            reason: String::new(),
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        if req.method() == Method::CONNECT {
            return self.tunnel(req);
        }
        let (host, port) = match self.target(&req) {
            Ok(t) => t,
            Err(resp) => return *resp,
        };
        let Some(client) = self.sh.control.client(self.peer.ip()) else {
            return full(
                StatusCode::FORBIDDEN,
                "text/plain",
                "islo gateway: unknown sandbox\n".into(),
            );
        };
        let path = crate::path::normalize(req.uri().path());
        let shown = path
            .as_ref()
            .map_or(req.uri().path(), |p| p.forward.as_str());
        let mut ev = self.event(&client, &req, &host, shown);
        let path = match path {
            Ok(p) => p,
            Err(e) => {
                ev.reason = e.to_string();
                return self.refuse(ev, StatusCode::BAD_REQUEST, EventAction::Deny, None);
            }
        };
        let (decision, rule) = client
            .policy
            .decide(req.method().as_str(), &host, &path.matched);
        ev.rule_id.clone_from(&decision.rule_id);
        ev.reason.clone_from(&decision.reason);
        if !decision.allowed {
            return self.refuse(ev, StatusCode::FORBIDDEN, EventAction::Deny, None);
        }
        if let Some(r) = rule
            && let Some(rpm) = r.rate_limit_rpm
            && let Err(wait) = self
                .sh
                .limiter
                .check(&client.sandbox_id, &r.id, rpm, Instant::now())
        {
            ev.reason = format!("rate limit {rpm}/min of {}", decision.reason);
            return self.refuse(
                ev,
                StatusCode::TOO_MANY_REQUESTS,
                EventAction::RateLimited,
                Some(wait),
            );
        }
        let (mut parts, body) = req.into_parts();
        let target = (parts.method.as_str(), host.as_str(), path.matched.as_str());
        let injected = self.inject(&client, rule, target, &mut parts.headers, &mut ev);
        let scrub = Scrubber::new(injected.iter().flat_map(|v| inject::echo_forms(v)));
        if scrub.is_some() {
            // An encoded response could not be scrubbed.
            parts.headers.insert(
                hyper::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        prepare_upstream_request(&mut parts, &host, port, &path.forward, &self.origin);
        let up_count = Arc::new(AtomicU64::new(0));
        let body = Counted::new(body, up_count.clone(), None);
        let sent = match self.sender(&host, port).await {
            Ok(mut s) => {
                let r = s.send_request(Request::from_parts(parts, body)).await;
                *self.upstream.lock().await = Some((host.clone(), port, s));
                r.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        ev.latency_ms = started.elapsed().as_secs_f64() * 1e3;
        match sent {
            Ok(resp) => self.relay(resp, ev, up_count, scrub),
            Err(e) => {
                ev.reason = format!("upstream failed: {e}");
                self.refuse(ev, StatusCode::BAD_GATEWAY, EventAction::Error, None)
            }
        }
    }

    /// Credentials: the matched rule's secret, then secrets whose own hosts match `host`; each
    /// swaps its placeholders in its carrier headers and, with an auth strategy, sets itself.
    /// Never over plain HTTP, where anyone on the path would read them. Returns the secrets
    /// and the header values that now carry them.
    fn inject(
        &self,
        client: &Client,
        rule: Option<&islo_api::GatewayRuleResponse>,
        (method, host, path): (&str, &str, &str),
        headers: &mut hyper::HeaderMap,
        ev: &mut Event,
    ) -> Vec<String> {
        let mut uses: Vec<(&str, Option<&islo_api::AuthStrategy>)> = Vec::new();
        if let Some(r) = rule
            && let Some(key) = &r.provider_key
        {
            uses.push((key, r.auth_strategy.as_ref()));
        }
        let routes = client.secret_routes.iter();
        for route in routes.filter(|s| s.applies(method, host, path)) {
            if !uses.iter().any(|(n, _)| *n == route.name) {
                uses.push((&route.name, route.auth.as_ref()));
            }
        }
        if !uses.is_empty() && !matches!(self.origin, Origin::Tls(_)) {
            ev.reason = format!("{}; credentials are never sent over plain HTTP", ev.reason);
            return Vec::new();
        }
        let mut injected = Vec::new();
        for (key, auth) in uses {
            let Some(secret) = self.sh.control.secret(&client.tenant_id, key) else {
                ev.reason = format!("{}; secret {key} is not set", ev.reason);
                continue;
            };
            let carriers = inject::carriers(auth);
            let prefix = &client.placeholder_prefix;
            injected.extend(inject::swap_headers(
                headers, &carriers, prefix, key, &secret,
            ));
            if let Some(a) = auth {
                injected.extend(inject::apply_auth(headers, a, &secret));
            }
            injected.push(secret);
        }
        injected
    }

    /// Answer with `status`, record the decision.
    fn refuse(
        &self,
        mut ev: Event,
        status: StatusCode,
        action: EventAction,
        retry: Option<Duration>,
    ) -> Response<ProxyBody> {
        ev.action = action;
        ev.status = status.as_u16();
        let body = serde_json::json!({
            "error": match action {
                EventAction::Deny => "denied by the islo gateway",
                EventAction::RateLimited => "rate limited by the islo gateway",
                _ => "the islo gateway could not reach the upstream",
            },
            "host": ev.host, "method": ev.method, "path": ev.path,
            "rule_id": ev.rule_id, "reason": ev.reason,
        });
        let mut resp = json(status, &body);
        if let Some(wait) = retry {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
        }
        self.sh.control.record(ev);
        resp
    }

    /// Pass the upstream's response back (scrubbed of what was injected); record when its
    /// body has gone through.
    fn relay(
        &self,
        resp: Response<Incoming>,
        mut ev: Event,
        up: Arc<AtomicU64>,
        scrub: Option<Scrubber>,
    ) -> Response<ProxyBody> {
        ev.status = resp.status().as_u16();
        let down = Arc::new(AtomicU64::new(0));
        let (control, d) = (self.sh.control.clone(), down.clone());
        let done = Box::new(move || {
            ev.bytes_up = up.load(Ordering::Relaxed);
            ev.bytes_down = d.load(Ordering::Relaxed);
            control.record(ev);
        });
        let (mut parts, body) = resp.into_parts();
        let body = Counted::new(body, down, Some(done));
        match scrub {
            Some(s) => {
                s.headers(&mut parts.headers);
                Response::from_parts(parts, Scrubbed::new(body, s).boxed())
            }
            None => Response::from_parts(parts, body.boxed()),
        }
    }

    /// A connection to `host:port`: the last one if it is still good, else a new one.
    async fn sender(&self, host: &str, port: u16) -> Result<SendRequest<UpBody>, String> {
        let kept = self.upstream.lock().await.take();
        if let Some((h, p, mut s)) = kept
            && h == host
            && p == port
            && s.ready().await.is_ok()
        {
            return Ok(s);
        }
        let tls = matches!(self.origin, Origin::Tls(_));
        self.sh
            .upstreams
            .connect(host, port, tls)
            .await
            .map_err(|e| e.to_string())
    }

    /// `CONNECT host:port`: accept, then serve what comes through the tunnel.
    fn tunnel(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let Some(authority) = req.uri().authority().map(|a| a.as_str().to_string()) else {
            return full(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "islo gateway: CONNECT needs host:port\n".into(),
            );
        };
        let (host, port) = split_authority(&authority, 443);
        let (peer, sh) = (self.peer, self.sh.clone());
        tokio::spawn(async move {
            if let Ok(up) = hyper::upgrade::on(req).await {
                serve_tunnel(TokioIo::new(up), peer, host, port, sh).await;
            }
        });
        Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
    }
}

/// Whether a `Host` header is a plain `host[:port]`.
fn valid_host_header(h: &str) -> bool {
    !h.is_empty() && !h.contains('@') && h.parse::<hyper::http::uri::Authority>().is_ok()
}

/// Origin-form URI with the normalised `path`, `Host` from the target (RFC 9112 §3.2.2: a
/// proxy replaces whatever the client sent), no proxy headers.
fn prepare_upstream_request(
    parts: &mut hyper::http::request::Parts,
    host: &str,
    port: u16,
    path: &str,
    origin: &Origin,
) {
    let default_port = if matches!(origin, Origin::Tls(_)) {
        443
    } else {
        80
    };
    let pq = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    if let Ok(u) = pq.parse() {
        parts.uri = u;
    }
    let h = if port == default_port {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    if let Ok(v) = HeaderValue::from_str(&h) {
        parts.headers.insert(HOST, v);
    }
    parts.headers.remove("proxy-connection");
    parts.headers.remove("proxy-authorization");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            split_authority("Example.com", 80),
            ("example.com".into(), 80)
        );
        assert_eq!(
            split_authority("example.com:8443", 80),
            ("example.com".into(), 8443)
        );
        assert_eq!(
            split_authority("10.0.0.1:443", 80),
            ("10.0.0.1".into(), 443)
        );
        assert_eq!(split_authority("[::1]:8080", 80), ("::1".into(), 8080));
    }

    #[test]
    fn host_headers() {
        for good in ["example.com", "example.com:8080", "[::1]:80", "10.0.0.1"] {
            assert!(valid_host_header(good), "{good}");
        }
        for bad in ["", "user@example.com", "a b", "example.com/x", "ex ample"] {
            assert!(!valid_host_header(bad), "{bad}");
        }
    }
}
