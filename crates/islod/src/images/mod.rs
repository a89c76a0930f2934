//! Images: pull from OCI/Docker registries, verify, unpack each layer once into a
//! content-addressed cache (`<state>/images/layers/<algo>_<hex>/`) shared by every sandbox.

mod extract;
mod reference;
pub mod repo;
#[cfg(test)]
mod roundtrip_tests;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use islo_api::ImagePullEvent;
use oci_client::client::{ClientConfig, ClientProtocol, linux_amd64_resolver};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::store::{ImageRow, Store};

pub use extract::{UnpackError, UnpackStats, unpack};
pub use reference::{Resolved, resolve};
pub use repo::Repo;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {0:?}: {1}")]
    InvalidReference(String, String),
    #[error("mirror {0} uses plain HTTP, which is allowed for loopback registries only")]
    InsecureMirror(String),
    #[error(
        "registry {0} is on a loopback, private or host address; islod pulls from such a registry \
         only when it is a configured mirror or listed in `private_registries` (islod.yaml)"
    )]
    PrivateRegistry(String),
    #[error("image {0} not found in its registry")]
    NotFound(String),
    #[error("registry error for {image}: {detail}")]
    Registry { image: String, detail: String },
    #[error("layer {digest} of {image} does not match its digest")]
    DigestMismatch { image: String, digest: String },
    #[error("layer {digest} of {image} refused: {source}")]
    Unpack {
        image: String,
        digest: String,
        source: UnpackError,
    },
    #[error(
        "the host has less than 1 GiB of disk left for images and snapshots; \
         remove some (islo snapshot rm, islo rm) and try again"
    )]
    HostFull,
    #[error("image cache: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What one layer may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerLimits {
    /// Bytes of file content written (holes are free).
    pub content: u64,
    /// Bytes of the uncompressed tar stream read (holes cost time).
    pub stream: u64,
}

/// Disk the image cache always leaves free on its filesystem.
pub const HOST_RESERVE: u64 = 1 << 30;

/// Bytes that may still be written on `path`'s filesystem before [`HOST_RESERVE`] is
/// touched: what images, snapshots and sandbox disks may take.
pub fn usable_bytes(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st
        .f_bavail
        .saturating_mul(st.f_frsize)
        .saturating_sub(HOST_RESERVE))
}

/// The most any layer may hold: a sandbox's largest disk.
pub const MAX_LAYER_BYTES: u64 = (islo_api::limits::DISK_GB.1 as u64) << 30;

/// How much more content than its compressed size a layer from outside may hold. Real layers
/// compress a few times; a decompression bomb, thousands.
pub const MAX_RATIO: u64 = 1000;

impl LayerLimits {
    /// For a layer blob of `len` bytes from a registry or an archive.
    pub fn for_blob(len: u64) -> Self {
        Self {
            content: len
                .saturating_mul(MAX_RATIO)
                .saturating_add(64 << 20)
                .min(MAX_LAYER_BYTES),
            stream: MAX_LAYER_BYTES,
        }
    }
}

/// A reader that fails once more than `left` bytes were read from it.
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: std::io::Read> std::io::Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(format!(
                "the layer is larger than {} bytes uncompressed",
                self.limit
            ))
        })?;
        Ok(n)
    }
}

/// The parts of an image config a sandbox uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    pub env: Vec<(String, String)>,
}

/// An image ready for sandboxes.
#[derive(Debug, Clone)]
pub struct Image {
    pub canonical: String,
    pub digest: String,
    /// Unpacked layers, lowest first.
    pub layers: Vec<PathBuf>,
    pub run: RunConfig,
}

/// Pull settings.
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// Registry → mirror URL.
    pub mirrors: BTreeMap<String, String>,
    /// Registry → (user, password).
    pub credentials: BTreeMap<String, (String, String)>,
    /// Registries (`host[:port]`) that may be on loopback or private addresses, besides the
    /// mirrors and the registries with credentials.
    pub private_registries: Vec<String>,
}

impl ImageSettings {
    /// Whether the operator named `host` (`host[:port]`): a mirror, a registry with
    /// credentials, or one of `private_registries`.
    fn configured(&self, host: &str) -> bool {
        let mirror_host = |url: &String| {
            let h = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .unwrap_or(url);
            h.trim_end_matches('/').to_string()
        };
        self.mirrors.values().map(mirror_host).any(|h| h == host)
            || self.credentials.contains_key(host)
            || self.private_registries.iter().any(|h| h == host)
    }
}

/// Refuse a registry that is not configured and resolves to an address no tenant may make
/// islod reach: loopback, private, link-local, or one of the host's own. (Otherwise a pull is
/// a port scanner of the host and its network.)
async fn guard_registry(settings: &ImageSettings, host: &str) -> Result<(), ImageError> {
    if settings.configured(host) {
        return Ok(());
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => {
            (n, p.parse().unwrap_or(443))
        }
        _ => (host, 443),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let refused = || ImageError::PrivateRegistry(host.to_string());
    let addrs = tokio::net::lookup_host((name, port))
        .await
        .map_err(|_| ImageError::Registry {
            image: host.to_string(),
            detail: "the registry's name does not resolve".into(),
        })?;
    for a in addrs {
        let ip = a.ip();
        if !islo_gateway::upstream::is_public(ip) || islo_gateway::upstream::is_host_address(ip) {
            return Err(refused());
        }
    }
    Ok(())
}

/// The image cache.
pub struct ImageStore {
    root: PathBuf,
    store: Arc<Store>,
    settings: ImageSettings,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Where a pull reports its progress, if anywhere.
pub type Progress = Option<mpsc::Sender<ImagePullEvent>>;

impl ImageStore {
    /// Registry → mirror URL, as configured.
    pub fn mirrors(&self) -> Vec<(String, String)> {
        self.settings
            .mirrors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn new(root: &Path, store: Arc<Store>, settings: ImageSettings) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("layers"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self {
            root: root.to_path_buf(),
            store,
            settings,
            locks: Mutex::new(HashMap::new()),
        })
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key.to_string()).or_default().clone()
    }

    fn layer_dir(&self, digest: &str) -> PathBuf {
        self.root.join("layers").join(digest.replace(':', "_"))
    }

    /// Whether `dir` is a layer of this cache (and so may be removed from it).
    pub fn owns_layer(&self, dir: &Path) -> bool {
        dir.parent() == Some(self.root.join("layers").as_path())
    }

    /// Refuse to fill the host: the image cache's filesystem must keep [`HOST_RESERVE`]
    /// bytes free.
    pub fn ensure_room(&self) -> Result<(), ImageError> {
        if usable_bytes(&self.root)? == 0 {
            return Err(ImageError::HostFull);
        }
        Ok(())
    }

    /// Scratch space on the layers' filesystem.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Unpack the layer blob `blob` (its sha256 `digest` already checked) into the cache,
    /// unless it is there; returns its directory. Blocking.
    pub fn add_layer(
        &self,
        blob: std::fs::File,
        digest: &str,
        label: &str,
        limits: LayerLimits,
    ) -> Result<PathBuf, ImageError> {
        let dir = self.layer_dir(digest);
        if dir.is_dir() {
            return Ok(dir);
        }
        match unpack_blob(blob, &self.root, &dir, (label, digest), limits) {
            // Another save of the same content got there first.
            Err(_) if dir.is_dir() => Ok(dir),
            other => other.map(|()| dir),
        }
    }

    /// The digest `reference` has in the cache (`None`: not pulled yet), without pulling.
    pub fn cached_digest(&self, reference: &str) -> Option<String> {
        let resolved = resolve(reference, &self.settings.mirrors).ok()?;
        Some(self.store.image(&resolved.canonical).ok()??.digest)
    }

    /// The image for `reference`, pulled if it is not cached. Returns whether it was cached.
    pub async fn ensure(
        &self,
        reference: &str,
        progress: Progress,
    ) -> Result<(Image, bool), ImageError> {
        let resolved = resolve(reference, &self.settings.mirrors)?;
        let lock = self.lock_for(&resolved.canonical);
        let _guard = lock.lock().await;
        if let Some(row) = self.store.image(&resolved.canonical)? {
            let layers: Vec<PathBuf> = row.layers.iter().map(|d| self.layer_dir(d)).collect();
            if layers.iter().all(|l| l.is_dir()) {
                return Ok((
                    Image {
                        canonical: row.reference,
                        digest: row.digest,
                        layers,
                        run: run_config(&row.config),
                    },
                    true,
                ));
            }
        }
        let img = self.pull(&resolved, progress).await?;
        Ok((img, false))
    }

    async fn pull(&self, r: &Resolved, progress: Progress) -> Result<Image, ImageError> {
        guard_registry(&self.settings, r.pull.registry()).await?;
        let client = oci_client::Client::new(ClientConfig {
            protocol: match &r.plain_http {
                Some(h) => ClientProtocol::HttpsExcept(vec![h.clone()]),
                None => ClientProtocol::Https,
            },
            platform_resolver: Some(Box::new(linux_amd64_resolver)),
            ..Default::default()
        });
        let auth = self.credentials(r.pull.registry());
        let (manifest, digest, config) = client
            .pull_manifest_and_config(&r.pull, &auth)
            .await
            .map_err(|e| registry_error(&r.canonical, &e))?;
        let mut digests = Vec::new();
        for layer in &manifest.layers {
            let from = Source {
                reference: &r.pull,
                label: &r.canonical,
            };
            self.fetch_layer(&client, from, layer, &layer.digest, &progress)
                .await?;
            digests.push(layer.digest.clone());
        }
        let row = ImageRow {
            reference: r.canonical.clone(),
            digest: digest.clone(),
            config,
            layers: digests,
        };
        self.store.put_image(&row)?;
        let layers = row.layers.iter().map(|d| self.layer_dir(d)).collect();
        Ok(Image {
            canonical: row.reference,
            digest,
            layers,
            run: run_config(&row.config),
        })
    }

    /// Fetch `layer` of `from` (unless the cache has `key`, the layer's cache key) and unpack
    /// it as `key`.
    pub(crate) async fn fetch_layer(
        &self,
        client: &oci_client::Client,
        from: Source<'_>,
        layer: &oci_client::manifest::OciDescriptor,
        key: &str,
        progress: &Progress,
    ) -> Result<PathBuf, ImageError> {
        let dir = self.layer_dir(key);
        let lock = self.lock_for(key);
        let _guard = lock.lock().await;
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = tempfile::Builder::new()
            .prefix("blob")
            .tempfile_in(self.root.join("tmp"))?;
        let len = download(client, from, layer, tmp.as_file(), progress).await?;
        let (image, digest, root) = (
            from.label.to_string(),
            layer.digest.clone(),
            self.root.clone(),
        );
        let blob = tmp.reopen()?;
        let limits = LayerLimits::for_blob(len);
        let out = dir.clone();
        tokio::task::spawn_blocking(move || {
            unpack_blob(blob, &root, &out, (&image, &digest), limits)
        })
        .await
        .map_err(|e| ImageError::Io(std::io::Error::other(e)))??;
        Ok(dir)
    }

    /// Whether the cache holds the layer `key` (`sha256_HEX`); its directory.
    pub fn cached_layer(&self, key: &str) -> Option<PathBuf> {
        let dir = self.layer_dir(key);
        dir.is_dir().then_some(dir)
    }

    /// The blob (digest, length) layer `key` was last uploaded as (see [`Self::record_pushed`]).
    pub fn pushed(&self, key: &str) -> Option<(String, u64)> {
        let text = std::fs::read_to_string(self.root.join("pushed").join(key)).ok()?;
        let (digest, len) = text.trim().split_once(' ')?;
        Some((digest.to_string(), len.parse().ok()?))
    }

    /// Remember that layer `key` was uploaded as blob `digest` of `len` bytes: a layer's
    /// content never changes, so the next upload of it only asks whether the registry still
    /// has that blob.
    pub fn record_pushed(&self, key: &str, digest: &str, len: u64) -> std::io::Result<()> {
        let dir = self.root.join("pushed");
        std::fs::create_dir_all(&dir)?;
        let tmp = tempfile::NamedTempFile::new_in(&dir)?;
        std::fs::write(tmp.path(), format!("{digest} {len}\n"))?;
        tmp.persist(dir.join(key)).map_err(|e| e.error)?;
        Ok(())
    }

    /// The credentials configured for `registry` (`host[:port]`).
    pub fn credentials(&self, registry: &str) -> RegistryAuth {
        match self.settings.credentials.get(registry) {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// Where a blob comes from: the reference it is pulled through, and how errors name it.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub reference: &'a oci_client::Reference,
    pub label: &'a str,
}

/// Stream `layer`'s blob into `file`, checking it against its digest; returns its length.
pub(crate) async fn download(
    client: &oci_client::Client,
    from: Source<'_>,
    layer: &oci_client::manifest::OciDescriptor,
    file: &std::fs::File,
    progress: &Progress,
) -> Result<u64, ImageError> {
    let mut stream = client
        .pull_blob_stream(from.reference, layer)
        .await
        .map_err(|e| registry_error(from.label, &e))?;
    let total = stream.content_length.unwrap_or(layer.size.max(0) as u64);
    let mut hasher = Sha256::new();
    let mut file = file.try_clone()?;
    let (mut current, mut reported) = (0u64, 0u64);
    while let Some(chunk) = stream.stream.next().await {
        let chunk = chunk.map_err(|e| ImageError::Registry {
            image: from.label.to_string(),
            detail: e.to_string(),
        })?;
        hasher.update(&chunk);
        file.write_all(&chunk)?;
        current += chunk.len() as u64;
        if let Some(tx) = progress
            && (current - reported >= 256 * 1024 || current == total)
        {
            reported = current;
            let _ = tx
                .send(ImagePullEvent::Progress {
                    layer: layer.digest.clone(),
                    current,
                    total,
                })
                .await;
        }
    }
    if format!("sha256:{}", hex::encode(hasher.finalize())) != layer.digest {
        return Err(ImageError::DigestMismatch {
            image: from.label.to_string(),
            digest: layer.digest.clone(),
        });
    }
    Ok(current)
}

/// Decompress (by magic bytes: gzip, zstd or plain tar) and unpack into `dir` atomically.
fn unpack_blob(
    blob: std::fs::File,
    root: &Path,
    dir: &Path,
    (image, digest): (&str, &str),
    limits: LayerLimits,
) -> Result<(), ImageError> {
    use std::io::{BufRead, BufReader};
    let mut r = BufReader::new(blob);
    let magic = r
        .fill_buf()?
        .get(..4)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let decoded: Box<dyn std::io::Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(r))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    };
    let reader = Capped {
        inner: decoded,
        left: limits.stream,
        limit: limits.stream,
    };
    let staging = tempfile::Builder::new()
        .prefix("layer")
        .tempdir_in(root.join("tmp"))?;
    unpack(reader, staging.path(), limits.content).map_err(|source| ImageError::Unpack {
        image: image.to_string(),
        digest: digest.to_string(),
        source,
    })?;
    std::fs::rename(staging.keep(), dir)?;
    Ok(())
}

fn registry_error(image: &str, e: &oci_client::errors::OciDistributionError) -> ImageError {
    let detail = e.to_string();
    let lower = detail.to_lowercase();
    if lower.contains("not found")
        || lower.contains("manifest_unknown")
        || lower.contains("manifest unknown")
        || lower.contains("name_unknown")
    {
        ImageError::NotFound(image.to_string())
    } else {
        ImageError::Registry {
            image: image.to_string(),
            detail,
        }
    }
}

/// The env of an image config (`config.Env`).
fn run_config(config: &str) -> RunConfig {
    let v: serde_json::Value = serde_json::from_str(config).unwrap_or_default();
    let env = v["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    e.as_str()?
                        .split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    RunConfig { env }
}
