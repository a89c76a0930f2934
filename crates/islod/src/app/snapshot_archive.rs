//! Snapshots as OCI image archives (`oci-archive:`), to move them between installations or
//! push them with any OCI tool: `oci-layout`, `index.json`, `blobs/sha256/…` (one
//! uncompressed layer per cached layer, the image config, the manifest).
//!
//! An archive to import is hostile input: only those three kinds of entry are read, every
//! blob is checked against its name, sizes are bounded by the disk, and layers go through
//! the same unpacker as image layers.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::snapshot_travel::Remote;
use super::snapshots::{Base, validate_name};
use super::{App, AppError, Tenant};
use crate::images::LayerLimits;
use crate::store::{SnapshotRow, StoreError, now_rfc3339};

const LAYER_MEDIA: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_MEDIA: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA: &str = "application/vnd.oci.image.manifest.v1+json";
const IMAGE_LABEL: &str = "dev.islo.snapshot.image";
const ENV_LABEL: &str = "dev.islo.snapshot.env";

fn io(what: &'static str) -> impl Fn(std::io::Error) -> AppError {
    move |e| AppError::Internal(format!("{what}: {e}"))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Append `data` as `blobs/sha256/HEX`; returns `sha256:HEX`.
fn add_blob(
    tar: &mut tar::Builder<impl Write>,
    data: &mut (impl Read + Seek),
    len: u64,
    hex: &str,
) -> std::io::Result<String> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(len);
    h.set_mtime(0);
    tar.append_data(&mut h, format!("blobs/sha256/{hex}"), data)?;
    Ok(format!("sha256:{hex}"))
}

fn add_bytes(tar: &mut tar::Builder<impl Write>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    tar.append_data(&mut h, path, data)
}

/// A cached layer as an uncompressed tar blob in a scratch file (rewound): the file, its
/// sha256 (hex) and length. Blocking.
pub(super) fn layer_blob(dir: &Path, scratch: &Path) -> Result<(File, String, u64), AppError> {
    let mut f = tempfile::tempfile_in(scratch).map_err(io("scratch file"))?;
    let (hex, len) = {
        let mut hw = HashTo(BufWriter::new(&mut f), Sha256::new(), 0);
        islo_runtime::layer_tar::write_layer(dir, &mut hw).map_err(io("writing a layer"))?;
        hw.0.flush().map_err(io("writing a layer"))?;
        (hex::encode(hw.1.finalize()), hw.2)
    };
    f.rewind().map_err(io("scratch file"))?;
    Ok((f, hex, len))
}

/// The image config of snapshot `s` with `base`, its layers' digests `diff_ids`.
pub(super) fn image_config(s: &SnapshotRow, base: &Base, diff_ids: &[String]) -> String {
    let env: Vec<String> = base
        .image_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    json!({
        "architecture": "amd64", "os": "linux", "created": s.created_at,
        "config": {
            "Env": env, "WorkingDir": base.workdir,
            "Labels": {IMAGE_LABEL: s.image, ENV_LABEL: serde_json::to_string(&base.env).unwrap_or_default()}
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    })
    .to_string()
}

/// What an image config written by [`image_config`] says of the base (no layers yet), and
/// the image the snapshot's filesystem came from.
pub(super) fn base_from_config(config: &Value) -> (Base, Option<String>) {
    let cfg = &config["config"];
    let labels = &cfg["Labels"];
    let image_env = cfg["Env"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|e| e.as_str()?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let env = labels[ENV_LABEL]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let base = Base {
        image_env,
        env,
        workdir: cfg["WorkingDir"]
            .as_str()
            .filter(|w| w.starts_with('/'))
            .unwrap_or("/workspace")
            .to_string(),
        ..Base::default()
    };
    (base, labels[IMAGE_LABEL].as_str().map(str::to_string))
}

/// Write the archive of snapshot `s` (its files: `base`) to `out` (blocking).
pub fn write_archive(
    s: &SnapshotRow,
    base: &Base,
    scratch: &Path,
    out: impl Write,
) -> Result<(), AppError> {
    let mut tar = tar::Builder::new(BufWriter::new(out));
    let (mut layers, mut diff_ids) = (Vec::new(), Vec::new());
    for dir in &base.layers {
        let (mut f, hex, len) = layer_blob(dir, scratch)?;
        let digest = add_blob(&mut tar, &mut f, len, &hex).map_err(io("writing the archive"))?;
        layers.push(json!({"mediaType": LAYER_MEDIA, "digest": digest, "size": len}));
        diff_ids.push(digest);
    }
    let config = image_config(s, base, &diff_ids);
    let cfg_hex = sha256_hex(config.as_bytes());
    add_bytes(
        &mut tar,
        &format!("blobs/sha256/{cfg_hex}"),
        config.as_bytes(),
    )
    .map_err(io("writing the archive"))?;
    let mut manifest = json!({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA,
        "config": {"mediaType": CONFIG_MEDIA, "digest": format!("sha256:{cfg_hex}"), "size": config.len()},
        "layers": layers
    });
    if let Some(dir) = &base.memory {
        let (mut f, hex, len) = super::snapshot_memory::pack(dir, scratch)?;
        let digest = add_blob(&mut tar, &mut f, len, &hex).map_err(io("writing the archive"))?;
        manifest["annotations"] = json!({ super::snapshot_memory::CHECKPOINT_ANNOTATION: digest });
    }
    let manifest = manifest.to_string();
    let man_hex = sha256_hex(manifest.as_bytes());
    add_bytes(
        &mut tar,
        &format!("blobs/sha256/{man_hex}"),
        manifest.as_bytes(),
    )
    .map_err(io("writing the archive"))?;
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA, "digest": format!("sha256:{man_hex}"), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": s.name}
        }]
    })
    .to_string();
    add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io("writing the archive"))?;
    add_bytes(&mut tar, "index.json", index.as_bytes()).map_err(io("writing the archive"))?;
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io("writing the archive"))
}

struct HashTo<W>(W, Sha256, u64);

impl<W: Write> Write for HashTo<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.update(&buf[..n]);
        self.2 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The blobs of an archive, each checked against its name, in `dir`.
fn read_blobs(archive: impl Read, dir: &Path) -> Result<BTreeMap<String, PathBuf>, AppError> {
    let bad = |m: String| AppError::Validation(format!("not a valid OCI archive: {m}"));
    let mut blobs = BTreeMap::new();
    let mut a = tar::Archive::new(archive);
    for entry in a.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_start_matches("./");
        let name = match path {
            "index.json" => "index.json".to_string(),
            p => match p.strip_prefix("blobs/sha256/") {
                Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    h.to_ascii_lowercase()
                }
                _ => continue,
            },
        };
        // A sparse or otherwise special entry would make the tar reader write what the
        // archive does not hold.
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            return Err(bad(format!("{path} is not a regular file entry")));
        }
        let dest = dir.join(&name);
        let mut f = BufWriter::new(File::create(&dest).map_err(io("scratch file"))?);
        let mut hw = HashTo(&mut f, Sha256::new(), 0);
        std::io::copy(&mut entry, &mut hw).map_err(io("reading the archive"))?;
        let got = hex::encode(hw.1.finalize());
        if name != "index.json" && got != name {
            return Err(bad(format!("blob {name} has digest {got}")));
        }
        blobs.insert(name, dest);
    }
    Ok(blobs)
}

fn json_blob(blobs: &BTreeMap<String, PathBuf>, digest: &str) -> Result<Value, AppError> {
    let key = digest.strip_prefix("sha256:").unwrap_or(digest);
    let path = blobs.get(key).ok_or_else(|| {
        AppError::Validation(format!("not a valid OCI archive: blob {digest} is missing"))
    })?;
    let text = std::fs::read(path).map_err(io("reading the archive"))?;
    serde_json::from_slice(&text)
        .map_err(|e| AppError::Validation(format!("not a valid OCI archive: {digest}: {e}")))
}

impl App {
    /// The archive of a ready snapshot, in a scratch file (rewound).
    pub async fn export_snapshot(
        self: &Arc<Self>,
        t: &Tenant,
        name: &str,
    ) -> Result<File, AppError> {
        let s = self.snapshot(t, name)?;
        if s.status != islo_api::SnapshotStatus::Ready {
            return Err(AppError::Conflict(format!(
                "snapshot {name} is {}; only ready snapshots export",
                s.status
            )));
        }
        // A snapshot saved on another node is exported from its copy in the registry.
        let base = self.local_base(&s.id, &Base::of(&s)?, None).await?;
        let scratch = self.images.tmp_dir();
        tokio::task::spawn_blocking(move || {
            let mut f = tempfile::tempfile_in(&scratch).map_err(io("scratch file"))?;
            write_archive(&s, &base, &scratch, &mut f)?;
            f.rewind().map_err(io("scratch file"))?;
            Ok(f)
        })
        .await?
    }

    /// Import an OCI archive (a file already received) as snapshot `name`.
    pub async fn import_snapshot(
        self: &Arc<Self>,
        t: &Tenant,
        name: &str,
        archive: File,
        trust_memory: bool,
    ) -> Result<SnapshotRow, AppError> {
        validate_name(name)?;
        if self.store.snapshot_by_name(&t.id, name)?.is_some() {
            return Err(AppError::Conflict(format!(
                "snapshot {name} already exists"
            )));
        }
        let app = self.clone();
        let (tenant, name) = (t.id.clone(), name.to_string());
        let mut row = tokio::task::spawn_blocking(move || {
            app.import_blocking(&tenant, &name, archive, trust_memory)
        })
        .await??;
        let mut base = Base::of(&row)?;
        self.hold(&row.id, &base)?;
        if let Some(remote) = self.publish_imported(&row, &base).await {
            base.remote = Some(remote);
            row.base = serde_json::to_string(&base).unwrap_or_default();
            self.store.finish_snapshot(
                &row.id,
                row.status,
                row.status_reason.as_deref(),
                row.size_bytes,
                row.checksum.as_deref(),
                Some(&row.base),
            )?;
        }
        Ok(row)
    }

    /// Copy an imported snapshot to the cluster's registry, if there is one; a failure
    /// leaves it on this node (sandboxes from it start here).
    async fn publish_imported(&self, row: &SnapshotRow, base: &Base) -> Option<Remote> {
        match self.publish_snapshot(row, base).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(snapshot = %row.name, error = %e, "copying an imported snapshot to the registry");
                None
            }
        }
    }

    fn import_blocking(
        &self,
        tenant: &str,
        name: &str,
        archive: File,
        trust_memory: bool,
    ) -> Result<SnapshotRow, AppError> {
        let scratch = tempfile::tempdir_in(self.images.tmp_dir()).map_err(io("scratch dir"))?;
        let blobs = read_blobs(BufReader::new(archive), scratch.path())?;
        let index_path = blobs
            .get("index.json")
            .ok_or_else(|| AppError::Validation("not a valid OCI archive: no index.json".into()))?;
        let index: Value = serde_json::from_slice(&std::fs::read(index_path).map_err(io("index"))?)
            .map_err(|e| {
                AppError::Validation(format!("not a valid OCI archive: index.json: {e}"))
            })?;
        let man_digest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let manifest = json_blob(&blobs, &man_digest)?;
        let config = json_blob(
            &blobs,
            manifest["config"]["digest"].as_str().unwrap_or_default(),
        )?;
        let mut layers = Vec::new();
        let mut top = (0u64, String::new());
        for l in manifest["layers"].as_array().cloned().unwrap_or_default() {
            let digest = l["digest"].as_str().unwrap_or_default().to_string();
            let key = digest
                .strip_prefix("sha256:")
                .unwrap_or(&digest)
                .to_string();
            let path = blobs.get(&key).ok_or_else(|| {
                AppError::Validation(format!(
                    "not a valid OCI archive: layer {digest} is missing"
                ))
            })?;
            let f = File::open(path).map_err(io("layer"))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            top = (len, digest.clone());
            layers.push(self.images.add_layer(
                f,
                &digest,
                &format!("import of {name}"),
                LayerLimits::for_blob(len),
            )?);
        }
        let (mut base, image) = base_from_config(&config);
        base.layers = layers;
        base.node = self.node_name();
        let id = uuid::Uuid::now_v7().to_string();
        let checkpoint = manifest["annotations"][super::snapshot_memory::CHECKPOINT_ANNOTATION]
            .as_str()
            .map(|d| d.strip_prefix("sha256:").unwrap_or(d).to_string());
        let mut reason = None;
        match (checkpoint, trust_memory) {
            (Some(key), true) => {
                let blob = blobs.get(&key).ok_or_else(|| {
                    AppError::Validation(
                        "not a valid OCI archive: its checkpoint is missing".into(),
                    )
                })?;
                let dir = self.memory_dir(&id);
                super::snapshot_memory::unpack(blob, &dir).inspect_err(|_| {
                    let _ = std::fs::remove_dir_all(&dir);
                })?;
                base.memory = Some(dir);
            }
            (Some(_), false) => {
                reason = Some(
                    "imported without the running processes the archive holds: CRIU restores \
                     them as root, so import it with trust_memory (`--trust-memory`) only from \
                     a maker you trust"
                        .to_string(),
                );
            }
            (None, _) => {}
        }
        let row = SnapshotRow {
            id,
            tenant_id: tenant.to_string(),
            name: name.to_string(),
            sandbox_id: None,
            status: islo_api::SnapshotStatus::Ready,
            status_reason: reason,
            size_bytes: Some(top.0),
            checksum: Some(top.1),
            image: image.unwrap_or_else(|| "imported".into()),
            base: serde_json::to_string(&base).unwrap_or_default(),
            created_at: now_rfc3339(),
        };
        match self.store.insert_snapshot(&row) {
            Err(StoreError::NameTaken(n)) => {
                Err(AppError::Conflict(format!("snapshot {n} already exists")))
            }
            other => other.map(|()| row).map_err(Into::into),
        }
    }
}
