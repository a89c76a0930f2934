//! The web dashboard at `/ui/`: its pages and assets (built in, nothing fetched from elsewhere),
//! and its login, which exchanges an API key for a session token kept in an HttpOnly,
//! SameSite=Strict cookie. The pages call the API itself with that cookie; `auth::require`
//! accepts it only from the dashboard's own pages ([`same_site`]).

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use islo_api::ui::{RequestOrigin, SESSION_COOKIE, UiLoginRequest, check_same_site};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use crate::app::AppError;

/// How long a dashboard login lasts (a working day); the API's own tokens last minutes.
const SESSION_TTL_SECS: u64 = 12 * 3600;

/// Scripts and styles from islod only; xterm.js sets styles of its own elements.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self'; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct Asset {
    name: &'static str,
    kind: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $kind:literal) => {
        Asset {
            name: $name,
            kind: $kind,
            body: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("vendor/xterm.js", "text/javascript; charset=utf-8"),
    asset!("vendor/xterm.css", "text/css; charset=utf-8"),
    asset!("vendor/addon-fit.js", "text/javascript; charset=utf-8"),
    asset!("vendor/LICENSE.xterm", "text/plain; charset=utf-8"),
];

const INDEX: &[u8] = include_bytes!("../../ui/index.html");

/// The dashboard's token in the request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(islo_api::ui::session_from_cookies)
        .map(str::to_string)
}

/// A cookie-authenticated request comes from the dashboard's own pages.
pub fn same_site(req: &Request) -> Result<(), &'static str> {
    let h = req.headers();
    let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
    check_same_site(&RequestOrigin {
        method: req.method().as_str(),
        host: get(header::HOST),
        origin: get(header::ORIGIN),
        fetch_site: h.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        csrf_header: h.contains_key(islo_api::ui::CSRF_HEADER),
    })
}

fn guarded(kind: &str, body: &'static [u8], cache: &str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    let mut set = |k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(header::CONTENT_TYPE, kind);
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::CACHE_CONTROL, cache);
    r
}

/// `GET /ui`: to `/ui/`.
pub async fn root() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `GET /ui/`: the one page (its views are `#/…` routes).
pub async fn index() -> Response {
    guarded("text/html; charset=utf-8", INDEX, "no-cache")
}

/// `GET /ui/assets/{*file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => guarded(a.kind, a.body, "no-cache"),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

fn cookie(token: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Served over TLS, as a proxy in front says.
fn over_tls(h: &HeaderMap) -> bool {
    h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https")
}

/// `POST /ui/login`: an API key for a session cookie.
pub async fn login(
    State(s): State<HttpState>,
    req_headers: HeaderMap,
    ApiJson(body): ApiJson<UiLoginRequest>,
) -> Result<Response, ApiError> {
    // Logging in from another site's page (login CSRF) is refused like any dashboard call.
    let mut probe = Request::new(axum::body::Body::empty());
    *probe.method_mut() = axum::http::Method::POST;
    *probe.headers_mut() = req_headers.clone();
    same_site(&probe).map_err(|m| ApiError(AppError::Forbidden(m.into())))?;
    let token = super::auth::session_for_key(&s, body.api_key.trim(), SESSION_TTL_SECS)?
        .ok_or(ApiError(AppError::Unauthorized))?;
    let set = cookie(&token, SESSION_TTL_SECS, over_tls(&req_headers));
    Ok((
        [(header::SET_COOKIE, set)],
        Json(serde_json::json!({ "expires_in": SESSION_TTL_SECS })),
    )
        .into_response())
}

/// `GET /ui/session`: whether the cookie holds a live session, and whose (answers 200 either
/// way, so the page can tell without an error).
pub async fn session(State(s): State<HttpState>, headers: HeaderMap) -> Json<serde_json::Value> {
    let tenant = match session_cookie(&headers) {
        Some(t) => super::auth::authenticate(&s, &t).ok(),
        // The local user on the unix socket (through `islo dashboard`'s proxy, which checks
        // its own secret first) needs no login.
        None if s.transport == super::Transport::Unix => Some(s.local_tenant.clone()),
        None => None,
    };
    Json(serde_json::json!({
        "authenticated": tenant.is_some(),
        "tenant": tenant.map(|t| t.name),
    }))
}

/// `POST /ui/logout`: the cookie is dropped.
pub async fn logout(req_headers: HeaderMap) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookie("", 0, over_tls(&req_headers)))],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_built_in_and_the_page_names_only_them() {
        let page = String::from_utf8_lossy(INDEX);
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{}", a.name);
        }
        for src in page.split("assets/").skip(1) {
            let name = src.split('"').next().unwrap_or_default();
            assert!(ASSETS.iter().any(|a| a.name == name), "{name}");
        }
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external assets"
        );
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = cookie("t", 60, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(cookie("t", 60, true).ends_with("; Secure"));
    }
}
