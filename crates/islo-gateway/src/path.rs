//! Request paths as rules see them and as upstreams receive them.
//!
//! A rule about `/private` must hold however the sandbox spells it: `/public/../private`,
//! `/%70rivate`, `//private`, `/./private`. So the gateway decides on one normal form and
//! forwards that same form. An encoded separator (`%2F`, `%5C`) is kept as it is on the way
//! out (npm names scoped packages `@scope%2Fname`), but rules see it as the `/` an upstream
//! may take it for; a path that would then climb (`..%2F`) or hold an empty segment is
//! refused, and so are a NUL, a raw backslash and a broken escape.

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ambiguous request path: {0}")]
pub struct AmbiguousPath(pub String);

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Percent-decode unreserved characters, upper-case the hex of the other escapes; refuse an
/// encoded NUL, a raw backslash and broken escapes.
fn decode_unreserved(path: &str) -> Result<String, AmbiguousPath> {
    let refuse = |why: &str| AmbiguousPath(format!("{why} in {path:?}"));
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(refuse("a broken %-escape"));
                };
                let c = hi * 16 + lo;
                match c {
                    0 => return Err(refuse("an encoded NUL")),
                    c if unreserved(c) => out.push(char::from(c)),
                    c => out.push_str(&format!("%{c:02X}")),
                }
                i += 3;
            }
            b'\\' => return Err(refuse("a backslash")),
            c => {
                out.push(char::from(c));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A request path in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// What the upstream receives: unreserved characters decoded, `//` collapsed, `.` and
    /// `..` removed (never above the root), encoded separators kept.
    pub forward: String,
    /// What rules match: the same with encoded separators as `/`.
    pub matched: String,
}

/// `.` and `..` segments removed, `//` collapsed, always absolute.
fn remove_dots(decoded: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = decoded.split('/').collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing = false;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "" | "." => trailing = i == last && i > 0,
            ".." => {
                segments.pop();
                trailing = i == last;
            }
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The normal form of a request path (without its query).
pub fn normalize(path: &str) -> Result<NormalPath, AmbiguousPath> {
    if !path.is_ascii() {
        return Err(AmbiguousPath(format!("non-ASCII bytes in {path:?}")));
    }
    let forward = remove_dots(&decode_unreserved(path)?);
    let matched = forward.replace("%2F", "/").replace("%5C", "/");
    if matched != forward {
        let inner = matched.strip_suffix('/').unwrap_or(&matched);
        if inner
            .split('/')
            .skip(1)
            .any(|seg| matches!(seg, "" | "." | ".."))
        {
            return Err(AmbiguousPath(format!(
                "an encoded separator makes {path:?} climb or hold an empty segment"
            )));
        }
    }
    Ok(NormalPath { forward, matched })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fwd(p: &str) -> String {
        normalize(p).unwrap().forward
    }

    #[test]
    fn spellings_of_one_path_are_one_path() {
        for p in [
            "/private",
            "/public/../private",
            "/%2e%2e/private",
            "/public/%2E%2E/private",
            "//private",
            "/./private",
            "/%70rivate",
            "/a/b/../../private",
            "/../../private",
            "private",
        ] {
            assert_eq!(fwd(p), "/private", "{p}");
        }
        assert_eq!(fwd("/"), "/");
        assert_eq!(fwd(""), "/");
        assert_eq!(fwd("/a/b/"), "/a/b/");
        assert_eq!(fwd("/a/b/."), "/a/b/");
        assert_eq!(fwd("/a/b/.."), "/a/");
        assert_eq!(fwd("/a%20b/c%3fd"), "/a%20b/c%3Fd");
    }

    #[test]
    fn encoded_separators_go_out_as_they_came_and_rules_see_slashes() {
        let n = normalize("/@anthropic-ai%2fclaude-code").unwrap();
        assert_eq!(n.forward, "/@anthropic-ai%2Fclaude-code");
        assert_eq!(n.matched, "/@anthropic-ai/claude-code");
        assert_eq!(
            normalize("/private%2Fsecret").unwrap().matched,
            "/private/secret"
        );
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for p in [
            "/public/..%2fprivate",
            "/public%2F..%2Fprivate",
            "/a%5c..%5cb",
            "/a%2F%2Fb",
            "/a%2F.%2Fb",
            "/a\\b",
            "/a%00",
            "/a%zz",
            "/a%2",
            "/caf\u{e9}",
        ] {
            assert!(normalize(p).is_err(), "{p}");
        }
    }
}
