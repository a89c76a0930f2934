//! A registry repository islod writes to: where a cluster's snapshots travel between nodes.
//!
//! Everything is pushed and pulled by digest, every blob and manifest is checked against its
//! digest on arrival, and the digests come from the cluster's shared state, not from the
//! registry: a registry (or whoever sits between it and a node) can withhold a snapshot but
//! cannot change one.

use std::io::Read;

use bytes::Bytes;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use super::ImageError;

/// The manifests islod writes.
pub const MANIFEST_MEDIA: &str = "application/vnd.oci.image.manifest.v1+json";

/// A repository URL's parts: whether it is plain HTTP, `host[:port]`, the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    pub plain_http: bool,
    pub registry: String,
    pub repository: String,
}

/// Parse `https://HOST[:PORT]/REPOSITORY` (`http://` only for a loopback host: anything else
/// would carry sandboxes' files in the clear).
pub fn parse_url(url: &str) -> Result<RepoUrl, String> {
    let (plain_http, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return Err(format!("{url:?} is not an https:// URL")),
    };
    let (registry, repository) = rest
        .trim_end_matches('/')
        .split_once('/')
        .ok_or_else(|| format!("{url:?} names no repository (https://HOST[:PORT]/REPOSITORY)"))?;
    let repo_ok = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        });
    if registry.is_empty() || !repo_ok {
        return Err(format!(
            "{url:?}: the repository is lowercase letters, digits, '.', '_', '-' and '/'"
        ));
    }
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    };
    let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
    if plain_http && !loopback {
        return Err(format!(
            "{url:?} is plain HTTP, which is allowed for a loopback registry only: use https://"
        ));
    }
    Ok(RepoUrl {
        plain_http,
        registry: registry.to_string(),
        repository: repository.to_string(),
    })
}

/// One repository of one registry.
pub struct Repo {
    client: Client,
    http: reqwest::Client,
    url: RepoUrl,
    auth: RegistryAuth,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Registry {
        image: what.to_string(),
        detail: e.to_string(),
    }
}

impl Repo {
    /// A repository at `url` (see [`parse_url`]), its certificates also checked against `ca`
    /// (PEM), with `auth`.
    pub fn new(url: &str, ca: Option<&[u8]>, auth: RegistryAuth) -> Result<Self, ImageError> {
        let url = parse_url(url).map_err(|e| ImageError::InvalidReference(url.into(), e))?;
        let mut http =
            reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
        let mut extra = Vec::new();
        if let Some(pem) = ca {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| failed("its CA", e))?;
            http = http.add_root_certificate(cert);
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.to_vec(),
            });
        }
        let client = Client::new(ClientConfig {
            protocol: if url.plain_http {
                ClientProtocol::HttpsExcept(vec![url.registry.clone()])
            } else {
                ClientProtocol::Https
            },
            use_monolithic_push: true,
            extra_root_certificates: extra,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            // A registry that stops answering fails the save or the create instead of holding
            // it for ever.
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        });
        let http = http.build().map_err(|e| failed("a registry client", e))?;
        Ok(Self {
            client,
            http,
            url,
            auth,
        })
    }

    /// `host[:port]/repository`, for messages and pinned references.
    pub fn name(&self) -> String {
        format!("{}/{}", self.url.registry, self.url.repository)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The repository's object `digest`.
    pub fn at(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.url.registry.clone(),
            self.url.repository.clone(),
            digest.to_string(),
        )
    }

    async fn authorize(&self) {
        self.client
            .store_auth_if_needed(&self.url.registry, &self.auth)
            .await;
    }

    /// Whether the repository has blob `digest`.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, ImageError> {
        self.authorize().await;
        self.client
            .blob_exists(&self.at(digest), digest)
            .await
            .map_err(|e| failed(&self.name(), e))
    }

    /// Upload `file` (`len` bytes, sha256 `digest`) unless the repository has it.
    pub async fn push_blob(
        &self,
        file: std::fs::File,
        digest: &str,
        len: u64,
    ) -> Result<(), ImageError> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        let chunks = futures_util::stream::unfold(Some(file), |f| async move {
            let mut f = f?;
            let (res, f) = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; 1 << 20];
                let r = f.read(&mut buf).map(|n| {
                    buf.truncate(n);
                    Bytes::from(buf)
                });
                (r, f)
            })
            .await
            .ok()?;
            match res {
                Ok(b) if b.is_empty() => None,
                Ok(b) => Some((Ok(b), Some(f))),
                Err(e) => Some((Err(OciDistributionError::IoError(e)), None)),
            }
        });
        self.client
            .push_blob_stream(&self.at(digest), chunks, digest, Some(len))
            .await
            .map(|_| ())
            .map_err(|e| failed(&self.name(), e))
    }

    /// Upload `data` unless the repository has it; returns its digest.
    pub async fn push_bytes(&self, data: Vec<u8>) -> Result<String, ImageError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        if !self.has_blob(&digest).await? {
            self.client
                .push_blob(&self.at(&digest), data, &digest)
                .await
                .map_err(|e| failed(&self.name(), e))?;
        }
        Ok(digest)
    }

    /// Upload a manifest under `tag`; returns its digest.
    pub async fn push_manifest(&self, tag: &str, body: Vec<u8>) -> Result<String, ImageError> {
        self.authorize().await;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        let r = Reference::with_tag(
            self.url.registry.clone(),
            self.url.repository.clone(),
            tag.to_string(),
        );
        let media = reqwest::header::HeaderValue::from_static(MANIFEST_MEDIA);
        self.client
            .push_manifest_raw(&r, body, media)
            .await
            .map_err(|e| failed(&self.name(), e))?;
        Ok(digest)
    }

    /// The manifest `digest`, checked against it.
    pub async fn manifest(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        self.authorize().await;
        let (body, _) = self
            .client
            .pull_manifest_raw(&self.at(digest), &self.auth, &[MANIFEST_MEDIA])
            .await
            .map_err(|e| super::registry_error(&format!("{}@{digest}", self.name()), &e))?;
        if format!("sha256:{}", hex::encode(Sha256::digest(&body))) != digest {
            return Err(ImageError::DigestMismatch {
                image: self.name(),
                digest: digest.to_string(),
            });
        }
        Ok(body.to_vec())
    }

    /// Remove the manifest `digest` (its blobs go at the registry's next garbage collection).
    /// One the registry does not have is gone already.
    pub async fn delete_manifest(&self, digest: &str) -> Result<(), ImageError> {
        let scheme = if self.url.plain_http { "http" } else { "https" };
        let url = format!(
            "{scheme}://{}/v2/{}/manifests/{digest}",
            self.url.registry, self.url.repository
        );
        let mut req = self.http.delete(url);
        if let RegistryAuth::Basic(u, p) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.map_err(|e| failed(&self.name(), e))?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(failed(
                &self.name(),
                format!("deleting {digest} answered {s} (is deleting enabled in the registry?)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("https://reg.internal:5000/islo/snapshots").unwrap();
        assert_eq!(
            (u.plain_http, u.registry.as_str(), u.repository.as_str()),
            (false, "reg.internal:5000", "islo/snapshots")
        );
        assert!(
            parse_url("http://127.0.0.1:5050/islo-snapshots/")
                .unwrap()
                .plain_http
        );
        for bad in [
            "reg.internal/islo",
            "https://reg.internal",
            "https://reg.internal/",
            "https://reg.internal/Islo",
            "https://reg.internal/a//b",
            "http://10.0.0.5:5000/islo",
            "ftp://reg/islo",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
