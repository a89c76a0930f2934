//! `islo dashboard`: the web dashboard islod serves at `/ui/`.
//!
//! A remote islod (`ISLO_BASE_URL`) serves it on its own listener: the URL is printed (and
//! opened), and the page asks for an API key. The local islod listens on a unix socket only,
//! so this command serves it on a loopback port of its own and forwards every request
//! (WebSockets and event streams too) to that socket, where the local user needs no key.
//! Other users of this machine can reach a loopback port, so the forwarder only serves a
//! browser that opened the URL printed here, which carries a random secret once and then
//! holds it in an HttpOnly, SameSite=Strict cookie; it refuses cross-site requests like
//! islod does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use islo_api::ui::{RequestOrigin, check_same_site};
use islo_client::Endpoint;

use crate::connect;

const COOKIE: &str = islo_api::ui::LOCAL_COOKIE;

#[derive(Args)]
pub struct DashboardArgs {
    /// Where the local forwarder listens (the local islod only).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Print the URL; do not open a browser.
    #[arg(long)]
    pub no_open: bool,
}

pub async fn run(a: DashboardArgs) -> anyhow::Result<i32> {
    let client = connect::client().await?;
    match client.endpoint().clone() {
        Endpoint::Http(base) => {
            let url = format!("{}/ui/", base.trim_end_matches('/'));
            announce(&url, a.no_open);
            Ok(0)
        }
        Endpoint::Unix(sock) => forward(sock, a).await,
    }
}

fn announce(url: &str, no_open: bool) {
    outln!("{url}");
    if !no_open
        && std::env::var_os("DISPLAY")
            .or(std::env::var_os("WAYLAND_DISPLAY"))
            .is_some()
    {
        let _ = std::process::Command::new("xdg-open")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

struct Forwarder {
    sock: PathBuf,
    secret: String,
}

type Body = BoxBody<Bytes, hyper::Error>;

fn text(status: StatusCode, msg: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(msg.as_bytes()))
            .map_err(|n| match n {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

async fn forward(sock: PathBuf, a: DashboardArgs) -> anyhow::Result<i32> {
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let at = listener.local_addr()?;
    let raw: [u8; 24] = rand::random();
    let f = Arc::new(Forwarder {
        sock,
        secret: hex::encode(raw),
    });
    eprintln!("Serving the dashboard of the local islod until Ctrl-C; open:");
    announce(
        &format!("http://{at}/ui/login-local?k={}", f.secret),
        a.no_open,
    );
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = tokio::signal::ctrl_c() => return Ok(0),
        };
        let f = f.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let f = f.clone();
                async move { Ok::<_, Infallible>(f.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades()
                .await;
        });
    }
}

impl Forwarder {
    fn has_cookie(&self, req: &Request<Incoming>) -> bool {
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| islo_api::ui::cookie_value(c, COOKIE))
            .any(|v| islo_api::ui::same_secret(v.as_bytes(), self.secret.as_bytes()))
    }

    async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() == "/ui/login-local" {
            let given = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("k="))
                .unwrap_or_default();
            if !islo_api::ui::same_secret(given.as_bytes(), self.secret.as_bytes()) {
                return text(
                    StatusCode::FORBIDDEN,
                    "this link is not the one `islo dashboard` printed\n",
                );
            }
            let mut r = text(StatusCode::SEE_OTHER, "");
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                self.secret
            );
            if let (Ok(c), Ok(l)) = (cookie.parse(), "/ui/".parse()) {
                r.headers_mut().insert(header::SET_COOKIE, c);
                r.headers_mut().insert(header::LOCATION, l);
            }
            return r;
        }
        if !self.has_cookie(&req) {
            return text(
                StatusCode::UNAUTHORIZED,
                "open the URL `islo dashboard` printed\n",
            );
        }
        let h = req.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        let origin = RequestOrigin {
            method: req.method().as_str(),
            host: get("host"),
            origin: get("origin"),
            fetch_site: get("sec-fetch-site"),
            csrf_header: h.contains_key(islo_api::ui::CSRF_HEADER),
        };
        if check_same_site(&origin).is_err() {
            return text(
                StatusCode::FORBIDDEN,
                "a cross-site request cannot use the dashboard\n",
            );
        }
        // Neither the forwarder's secret nor any credential of the page reaches islod.
        req.headers_mut().remove(header::COOKIE);
        req.headers_mut().remove(header::AUTHORIZATION);
        match self.relay(req).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("islo dashboard: {e:#}");
                text(StatusCode::BAD_GATEWAY, "islod did not answer\n")
            }
        }
    }

    /// `req` to islod on its socket; a protocol switch (WebSocket) is joined end to end.
    async fn relay(&self, mut req: Request<Incoming>) -> anyhow::Result<Response<Body>> {
        let upgrade_in = hyper::upgrade::on(&mut req);
        let unix = tokio::net::UnixStream::connect(&self.sock)
            .await
            .with_context(|| format!("connecting to {}", self.sock.display()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(unix)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let mut resp = sender.send_request(req).await?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upgrade_out = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                if let (Ok(a), Ok(b)) = (upgrade_in.await, upgrade_out.await) {
                    let _ =
                        tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b))
                            .await;
                }
            });
        }
        Ok(resp.map(BodyExt::boxed))
    }
}
