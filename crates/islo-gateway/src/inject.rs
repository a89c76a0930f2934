//! Credentials on the way out.
//!
//! Placeholders: a sandbox's env holds tokens `islo_p_NONCE_SECRET` instead of secrets. In a
//! request allowed by a rule whose `provider_key` is `SECRET` (or toward the secret's own
//! hosts), such a token in the header that carries credentials (`Authorization`, also inside
//! `Basic` as git sends it, and the header an auth strategy names) becomes the secret. In any
//! other header, and toward any other host, it stays the placeholder, which is worthless.
//!
//! Rules with `provider_key` and `auth_strategy` set the credential themselves (`bearer`,
//! `basic` with the strategy's user name, or a named `header` with a `{token}` template).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue};
use islo_api::{AuthMode, AuthStrategy};

/// The characters a secret's name is made of (and that end a token).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Replace each `prefix + secret_name` token in `text` by `secret`; other tokens stay.
pub fn swap_in(text: &str, prefix: &str, secret_name: &str, secret: &str) -> Option<String> {
    if !text.contains(prefix) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        let end = after.find(|c: char| !name_char(c)).unwrap_or(after.len());
        if &after[..end] == secret_name {
            out.push_str(secret);
            changed = true;
        } else {
            out.push_str(&rest[at..at + prefix.len() + end]);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// The headers that may carry `auth`'s credential: `Authorization`, and the header a
/// `header` strategy names.
pub fn carriers(auth: Option<&AuthStrategy>) -> Vec<HeaderName> {
    let mut out = vec![AUTHORIZATION];
    if let Some(a) = auth
        && a.mode == AuthMode::Header
        && let Some(n) = a
            .name
            .as_deref()
            .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
    {
        out.push(n);
    }
    out
}

/// Swap placeholders of `secret_name` in the headers `only` of `headers`; returns the values
/// that now hold the secret.
pub fn swap_headers(
    headers: &mut HeaderMap,
    only: &[HeaderName],
    prefix: &str,
    secret_name: &str,
    secret: &str,
) -> Vec<String> {
    let mut swapped_values = Vec::new();
    for name in only {
        let values: Vec<HeaderValue> = headers.get_all(name).iter().cloned().collect();
        let mut changed = false;
        let mut new_values = Vec::with_capacity(values.len());
        for v in values {
            let swapped = v.to_str().ok().and_then(|t| {
                swap_in(t, prefix, secret_name, secret)
                    .or_else(|| swap_basic(t, prefix, secret_name, secret))
            });
            match swapped.and_then(|s| HeaderValue::from_str(&s).ok().map(|v| (s, v))) {
                Some((s, mut nv)) => {
                    changed = true;
                    nv.set_sensitive(true);
                    new_values.push(nv);
                    swapped_values.push(s);
                }
                None => new_values.push(v),
            }
        }
        if changed {
            headers.remove(name);
            for v in new_values {
                headers.append(name.clone(), v);
            }
        }
    }
    swapped_values
}

/// `Basic base64(user:pass)` with a placeholder inside.
fn swap_basic(value: &str, prefix: &str, secret_name: &str, secret: &str) -> Option<String> {
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let plain = String::from_utf8(B64.decode(b64.trim()).ok()?).ok()?;
    let swapped = swap_in(&plain, prefix, secret_name, secret)?;
    Some(format!("Basic {}", B64.encode(swapped)))
}

/// Set the rule's credential on `headers`; returns the value set.
pub fn apply_auth(headers: &mut HeaderMap, auth: &AuthStrategy, secret: &str) -> Option<String> {
    let (name, value) = match auth.mode {
        AuthMode::Bearer => (AUTHORIZATION, format!("Bearer {secret}")),
        AuthMode::Basic => {
            let user = auth.username.as_deref().unwrap_or("");
            let encoded = B64.encode(format!("{user}:{secret}"));
            (AUTHORIZATION, format!("Basic {encoded}"))
        }
        AuthMode::Header => {
            let name = auth
                .name
                .as_deref()
                .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())?;
            let template = auth.format.as_deref().unwrap_or("{token}");
            (name, template.replace("{token}", secret))
        }
    };
    let mut v = HeaderValue::from_str(&value).ok()?;
    v.set_sensitive(true);
    headers.insert(name, v);
    Some(value)
}

/// What an echo of `value` (a header value holding a secret) may show: the value, and the
/// base64 of `Basic` credentials.
pub fn echo_forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    if let Some((scheme, token)) = value.split_once(' ') {
        out.push(token.trim().to_string());
        if scheme.eq_ignore_ascii_case("basic")
            && let Some(plain) = B64
                .decode(token.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        {
            out.push(plain);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const P: &str = "islo_p_abc_";

    #[test]
    fn only_the_named_secret_is_swapped() {
        let t = "token islo_p_abc_github and islo_p_abc_openai, islo_p_abc_github!";
        assert_eq!(
            swap_in(t, P, "github", "S").unwrap(),
            "token S and islo_p_abc_openai, S!"
        );
        assert!(swap_in(t, P, "slack", "S").is_none());
        // Another sandbox's nonce is not ours.
        assert!(swap_in("islo_p_zzz_github", P, "github", "S").is_none());
        // A longer name is a different secret.
        assert!(swap_in("islo_p_abc_github2", P, "github", "S").is_none());
    }

    #[test]
    fn headers_and_basic_auth() {
        let mut h = HeaderMap::new();
        h.insert("x-token", HeaderValue::from_static("islo_p_abc_github"));
        let basic = format!("Basic {}", B64.encode("x-access-token:islo_p_abc_github"));
        h.insert(AUTHORIZATION, HeaderValue::from_str(&basic).unwrap());
        let values = swap_headers(&mut h, &carriers(None), P, "github", "ghp_real");
        assert_eq!(h["x-token"], "islo_p_abc_github", "not a credential header");
        let want = format!("Basic {}", B64.encode("x-access-token:ghp_real"));
        assert_eq!(h[AUTHORIZATION], want.as_str());
        assert_eq!(values, std::slice::from_ref(&want));
        assert!(echo_forms(&want).contains(&"x-access-token:ghp_real".to_string()));
        let header = AuthStrategy {
            mode: AuthMode::Header,
            name: Some("x-token".into()),
            ..Default::default()
        };
        swap_headers(&mut h, &carriers(Some(&header)), P, "github", "ghp_real");
        assert_eq!(h["x-token"], "ghp_real", "the strategy's own header");
    }

    #[test]
    fn strategies() {
        let mut h = HeaderMap::new();
        let a = |mode: &str| AuthStrategy {
            mode: AuthMode::parse(mode).unwrap(),
            username: Some("u".into()),
            name: Some("x-api-key".into()),
            format: Some("Key {token}".into()),
        };
        apply_auth(&mut h, &a("bearer"), "S");
        assert_eq!(h[AUTHORIZATION], "Bearer S");
        apply_auth(&mut h, &a("basic"), "S");
        assert_eq!(
            h[AUTHORIZATION],
            format!("Basic {}", B64.encode("u:S")).as_str()
        );
        apply_auth(&mut h, &a("header"), "S");
        assert_eq!(h["x-api-key"], "Key S");
    }
}
