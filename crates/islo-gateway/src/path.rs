//! Request paths as rules see them and as upstreams receive them.
//!
//! A rule about `/private` must hold however the sandbox spells it: `/public/../private`,
//! `/%70rivate`, `//private`, `/./private`. So the gateway decides on one normal form and
//! forwards that same form, and refuses spellings whose meaning depends on the upstream
//! (an encoded `/` or `\`, a NUL, a broken escape).

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

/// Percent-decode unreserved characters, upper-case the hex of the other escapes; refuse
/// encoded separators, NUL, backslashes and broken escapes.
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
                    b'/' | b'\\' => return Err(refuse("an encoded separator")),
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

/// The normal form of a request path (without its query): unreserved characters decoded,
/// `//` collapsed, `.` and `..` segments removed (never above the root), always absolute.
pub fn normalize(path: &str) -> Result<String, AmbiguousPath> {
    if !path.is_ascii() {
        return Err(AmbiguousPath(format!("non-ASCII bytes in {path:?}")));
    }
    let decoded = decode_unreserved(path)?;
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
            assert_eq!(normalize(p).unwrap(), "/private", "{p}");
        }
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("").unwrap(), "/");
        assert_eq!(normalize("/a/b/").unwrap(), "/a/b/");
        assert_eq!(normalize("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/a%20b/c%3fd").unwrap(), "/a%20b/c%3Fd");
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for p in [
            "/public/..%2fprivate",
            "/public%2F..%2Fprivate",
            "/a%5c..%5cb",
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
