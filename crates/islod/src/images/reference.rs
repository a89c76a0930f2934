//! Image references: Docker Hub normalisation and registry mirrors.

use std::collections::BTreeMap;

use oci_client::Reference;

use super::ImageError;

/// Where and how to pull an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Canonical name (`docker.io/library/python:3.12-slim`), the cache key.
    pub canonical: String,
    /// What to ask the registry for (the mirror's host when one applies).
    pub pull: Reference,
    /// Registry host spoken to over plain HTTP (loopback only).
    pub plain_http: Option<String>,
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h == "::1" || h.starts_with("127.")
}

/// Resolve `image` against `mirrors` (registry → `http[s]://host[:port]`).
pub fn resolve(image: &str, mirrors: &BTreeMap<String, String>) -> Result<Resolved, ImageError> {
    let parsed: Reference = image.parse().map_err(|e: oci_client::ParseError| {
        ImageError::InvalidReference(image.to_string(), e.to_string())
    })?;
    let canonical = parsed.whole();
    let registry = parsed.registry().to_string();
    let mirror = mirrors
        .get(&registry)
        .or_else(|| mirrors.get(parsed.resolve_registry()))
        .cloned();
    let (host, plain) = match mirror {
        Some(url) => {
            let (plain, host) = if let Some(h) = url.strip_prefix("http://") {
                (true, h)
            } else {
                (false, url.strip_prefix("https://").unwrap_or(&url))
            };
            let host = host.trim_end_matches('/').to_string();
            if plain && !is_loopback(&host) {
                return Err(ImageError::InsecureMirror(url.clone()));
            }
            (host, plain)
        }
        None => {
            let plain = is_loopback(&registry);
            (registry, plain)
        }
    };
    let repo = parsed.repository().to_string();
    let pull = match (parsed.digest(), parsed.tag()) {
        (Some(d), _) => Reference::with_digest(host.clone(), repo, d.to_string()),
        (None, Some(t)) => Reference::with_tag(host.clone(), repo, t.to_string()),
        (None, None) => Reference::with_tag(host.clone(), repo, "latest".into()),
    };
    Ok(Resolved {
        canonical,
        pull,
        plain_http: plain.then_some(host),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirrors() -> BTreeMap<String, String> {
        BTreeMap::from([("docker.io".to_string(), "http://127.0.0.1:5050".to_string())])
    }

    #[test]
    fn docker_hub_names_normalise_and_use_the_mirror() {
        let r = resolve("python:3.12-slim", &mirrors()).unwrap();
        assert_eq!(r.canonical, "docker.io/library/python:3.12-slim");
        assert_eq!(r.pull.whole(), "127.0.0.1:5050/library/python:3.12-slim");
        assert_eq!(r.plain_http.as_deref(), Some("127.0.0.1:5050"));
        let r = resolve("docker.io/library/busybox", &mirrors()).unwrap();
        assert_eq!(r.pull.whole(), "127.0.0.1:5050/library/busybox:latest");
    }

    #[test]
    fn digests_and_other_registries() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        let r = resolve(&format!("ghcr.io/o/r@{d}"), &mirrors()).unwrap();
        assert_eq!(r.pull.digest(), Some(d.as_str()));
        assert_eq!(r.plain_http, None);
        let r = resolve("127.0.0.1:5000/x/y:1", &BTreeMap::new()).unwrap();
        assert_eq!(r.plain_http.as_deref(), Some("127.0.0.1:5000"));
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let m = BTreeMap::from([("docker.io".to_string(), "http://10.1.2.3:5000".to_string())]);
        assert!(matches!(
            resolve("busybox", &m),
            Err(ImageError::InsecureMirror(_))
        ));
        assert!(matches!(
            resolve("not a ref", &mirrors()),
            Err(ImageError::InvalidReference(..))
        ));
    }
}
