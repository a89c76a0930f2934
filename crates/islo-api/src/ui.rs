//! The web dashboard's side of the contract: its session cookie, and the rule that keeps its
//! cookie-authenticated requests to its own pages (no cross-site request forgery), shared by
//! islod and `islo dashboard`'s local proxy.

use serde::{Deserialize, Serialize};

/// The cookie that holds a dashboard session token (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "islo_session";
/// The cookie that holds `islo dashboard`'s one-time secret (its local forwarder).
pub const LOCAL_COOKIE: &str = "islo_local";
/// The header every state-changing dashboard request carries. A page of another site cannot
/// send it without a CORS preflight, which islod never grants.
pub const CSRF_HEADER: &str = "x-islo-csrf";

/// `POST /ui/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UiLoginRequest {
    pub api_key: String,
}

/// What a request says about where it comes from.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOrigin<'a> {
    pub method: &'a str,
    /// `Host`.
    pub host: Option<&'a str>,
    /// `Origin`, when the browser sent one.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site`, when the browser sent one.
    pub fetch_site: Option<&'a str>,
    /// The request carries [`CSRF_HEADER`].
    pub csrf_header: bool,
}

/// A cookie-authenticated request is served only when it comes from the dashboard's own
/// pages: not marked cross-site by the browser, its `Origin` (if any) this very host, and,
/// for anything but a read, carrying [`CSRF_HEADER`].
pub fn check_same_site(r: &RequestOrigin<'_>) -> Result<(), &'static str> {
    if let Some(site) = r.fetch_site
        && !matches!(site, "same-origin" | "none")
    {
        return Err("a cross-site request cannot use the dashboard's session");
    }
    if let Some(origin) = r.origin {
        let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or_default();
        if Some(authority) != r.host {
            return Err("a request from another origin cannot use the dashboard's session");
        }
    }
    let reads = matches!(r.method, "GET" | "HEAD" | "OPTIONS");
    if !reads && !r.csrf_header {
        return Err("the dashboard's requests carry the X-Islo-CSRF header");
    }
    Ok(())
}

/// Two secrets equal, compared in a time that does not depend on where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The session token in a `Cookie` header.
pub fn session_from_cookies(cookie_header: &str) -> Option<&str> {
    cookie_value(cookie_header, SESSION_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(
        method: &'a str,
        origin: Option<&'a str>,
        site: Option<&'a str>,
    ) -> RequestOrigin<'a> {
        RequestOrigin {
            method,
            host: Some("127.0.0.1:8080"),
            origin,
            fetch_site: site,
            csrf_header: false,
        }
    }

    #[test]
    fn reads_from_the_same_origin_pass() {
        assert!(check_same_site(&req("GET", None, None)).is_ok());
        assert!(
            check_same_site(&req(
                "GET",
                Some("http://127.0.0.1:8080"),
                Some("same-origin")
            ))
            .is_ok()
        );
        assert!(check_same_site(&req("GET", None, Some("none"))).is_ok());
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(check_same_site(&req("GET", None, Some("cross-site"))).is_err());
        assert!(check_same_site(&req("GET", None, Some("same-site"))).is_err());
        assert!(check_same_site(&req("GET", Some("http://evil.example"), None)).is_err());
        assert!(check_same_site(&req("GET", Some("null"), None)).is_err());
    }

    #[test]
    fn writes_need_the_header() {
        assert!(check_same_site(&req("POST", None, Some("same-origin"))).is_err());
        let mut r = req("DELETE", Some("http://127.0.0.1:8080"), Some("same-origin"));
        r.csrf_header = true;
        assert!(check_same_site(&r).is_ok());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"secret", b"secret"));
        assert!(!same_secret(b"secret", b"secreT"));
        assert!(!same_secret(b"secret", b"secret2"));
    }

    #[test]
    fn the_session_is_found_among_cookies() {
        assert_eq!(
            session_from_cookies("a=1; islo_session=tok; b=2"),
            Some("tok")
        );
        assert_eq!(session_from_cookies("islo_session="), None);
        assert_eq!(session_from_cookies("other=1"), None);
        assert_eq!(
            cookie_value("islo_session=a; islo_local=b", LOCAL_COOKIE),
            Some("b")
        );
    }
}

/// What a sandbox uses now (dashboard extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxUsage {
    /// Memory charged to its cgroup.
    pub memory_bytes: u64,
    /// CPU time since it started, in microseconds (a rate comes from two readings).
    pub cpu_usec: u64,
}

/// One `sandboxes` event of `GET /sandboxes/-/watch`: the tenant's sandboxes as they are,
/// with the use of the running ones by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxesSnapshot {
    pub sandboxes: Vec<crate::SandboxResponse>,
    pub usage: std::collections::BTreeMap<String, SandboxUsage>,
    /// When it was read, Unix milliseconds.
    pub at_ms: u64,
}
