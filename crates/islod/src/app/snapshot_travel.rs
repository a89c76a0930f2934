//! Snapshots that travel between a cluster's nodes through its `snapshot_registry`.
//!
//! When a node saves (or imports) a snapshot, it copies it to the registry as an OCI image:
//! one uncompressed layer per cached layer, the image config, the memory checkpoint if any,
//! and a manifest tagged with the snapshot's id. The manifest's digest goes into the
//! snapshot's record, which is the cluster's shared state. Every layer's descriptor names
//! the layer's cache key (`sha256_HEX`), so a node that has that layer already (the base
//! image's, usually) fetches only the others.
//!
//! A node asked for a sandbox from a snapshot saved elsewhere pulls it once, by that digest,
//! into its layer cache. What a node holds of a snapshot, pulled or its own, is recorded in
//! `<state>/snapshots/held/ID.json` and removed when the snapshot is gone, also when it was
//! removed through another node while this one was away.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::snapshot_archive::{image_config, layer_blob};
use super::snapshot_memory::CHECKPOINT_ANNOTATION;
use super::snapshots::Base;
use super::{App, AppError};
use crate::images::{Progress, Repo, Source, download};
use crate::store::SnapshotRow;

/// Where a snapshot was copied: the repository (`HOST[:PORT]/REPOSITORY`) and the digest of
/// the snapshot's manifest in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Remote {
    pub repository: String,
    pub manifest: String,
}

/// The cache key of a layer, on its descriptor.
const LAYER_KEY: &str = "dev.islo.snapshot.layer";
const LAYER_MEDIA: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_MEDIA: &str = "application/vnd.oci.image.config.v1+json";

/// A cache key as islod names layers: `sha256_` and 64 hex digits.
fn valid_key(key: &str) -> bool {
    key.strip_prefix("sha256_")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn key_of(dir: &Path) -> Result<String, AppError> {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|k| valid_key(k))
        .ok_or_else(|| AppError::Internal(format!("{} is not a cached layer", dir.display())))
}

fn registry(e: crate::images::ImageError) -> AppError {
    AppError::Provisioning(format!("the cluster's snapshot registry: {e}"))
}

impl App {
    fn snapshot_repo(&self) -> Option<Arc<Repo>> {
        self.cluster.get()?.snapshots.clone()
    }

    /// Copy snapshot `row` (its files: `base`) to the cluster's registry; `None` without one.
    pub(super) async fn publish_snapshot(
        &self,
        row: &SnapshotRow,
        base: &Base,
    ) -> Result<Option<Remote>, AppError> {
        let Some(repo) = self.snapshot_repo() else {
            return Ok(None);
        };
        let (mut layers, mut diff_ids) = (Vec::new(), Vec::new());
        for dir in &base.layers {
            let key = key_of(dir)?;
            let (digest, len) = self.push_layer(&repo, dir, &key).await?;
            layers.push(json!({
                "mediaType": LAYER_MEDIA, "digest": digest, "size": len,
                "annotations": {LAYER_KEY: key}
            }));
            diff_ids.push(digest);
        }
        let config = image_config(row, base, &diff_ids).into_bytes();
        let config_len = config.len();
        let config_digest = repo.push_bytes(config).await.map_err(registry)?;
        let mut manifest = json!({
            "schemaVersion": 2, "mediaType": crate::images::repo::MANIFEST_MEDIA,
            "config": {"mediaType": CONFIG_MEDIA, "digest": config_digest, "size": config_len},
            "layers": layers
        });
        if let Some(dir) = &base.memory {
            let (d, scratch) = (dir.clone(), self.images.tmp_dir());
            let (f, hex, len) =
                tokio::task::spawn_blocking(move || super::snapshot_memory::pack(&d, &scratch))
                    .await??;
            let digest = format!("sha256:{hex}");
            repo.push_blob(f, &digest, len).await.map_err(registry)?;
            manifest["annotations"] = json!({ CHECKPOINT_ANNOTATION: digest });
        }
        let digest = repo
            .push_manifest(&row.id, manifest.to_string().into_bytes())
            .await
            .map_err(registry)?;
        Ok(Some(Remote {
            repository: repo.name(),
            manifest: digest,
        }))
    }

    /// Upload cached layer `dir` (cache key `key`) unless the registry has it; its blob's
    /// digest and length.
    async fn push_layer(
        &self,
        repo: &Repo,
        dir: &Path,
        key: &str,
    ) -> Result<(String, u64), AppError> {
        if let Some((digest, len)) = self.images.pushed(key)
            && repo.has_blob(&digest).await.map_err(registry)?
        {
            return Ok((digest, len));
        }
        let (d, scratch) = (dir.to_path_buf(), self.images.tmp_dir());
        let (f, hex, len) = tokio::task::spawn_blocking(move || layer_blob(&d, &scratch)).await??;
        let digest = format!("sha256:{hex}");
        repo.push_blob(f, &digest, len).await.map_err(registry)?;
        if let Err(e) = self.images.record_pushed(key, &digest, len) {
            tracing::warn!(layer = %key, error = %e, "remembering an uploaded layer");
        }
        Ok((digest, len))
    }

    /// The base of snapshot `id` on this node: `base` itself when its files are here, else
    /// the copy pulled from the cluster's registry (once).
    pub(super) async fn local_base(
        &self,
        id: &str,
        base: &Base,
        progress: Progress,
    ) -> Result<Base, AppError> {
        let node = match &base.node {
            Some(n) if Some(n) != self.node_name().as_ref() => n.clone(),
            _ => return Ok(base.clone()),
        };
        let Some(remote) = &base.remote else {
            return Err(AppError::Conflict(format!(
                "the snapshot's files are on node {node} and were not copied to a registry: \
                 create the sandbox on {node} (--node {node})"
            )));
        };
        let lock = self.op_lock(&format!("pull {id}"));
        let _g = lock.lock().await;
        if let Some(b) = std::fs::read(self.held_record(id))
            .ok()
            .and_then(|t| serde_json::from_slice::<Base>(&t).ok())
            && b.layers.iter().all(|l| l.is_dir())
            && b.memory.as_ref().is_none_or(|m| m.is_dir())
        {
            return Ok(b);
        }
        let repo = self.snapshot_repo().ok_or_else(|| {
            AppError::Conflict(format!(
                "the snapshot is in registry {}, and this node has no snapshot_registry",
                remote.repository
            ))
        })?;
        if repo.name() != remote.repository {
            return Err(AppError::Conflict(format!(
                "the snapshot is in registry {}, and this node's snapshot_registry is {}",
                remote.repository,
                repo.name()
            )));
        }
        let pulled = self
            .pull_snapshot(&repo, (id, base, remote), &node, progress)
            .await?;
        self.hold(id, &pulled)?;
        tracing::info!(snapshot = %id, from = %node, "snapshot pulled from the cluster's registry");
        Ok(pulled)
    }

    async fn pull_snapshot(
        &self,
        repo: &Repo,
        (id, base, remote): (&str, &Base, &Remote),
        node: &str,
        progress: Progress,
    ) -> Result<Base, AppError> {
        let body = repo.manifest(&remote.manifest).await.map_err(|e| match e {
            crate::images::ImageError::NotFound(_) => AppError::Conflict(format!(
                "the snapshot's copy is gone from registry {}: start the sandbox on node \
                 {node}, which holds its files (--node {node})",
                remote.repository
            )),
            e => registry(e),
        })?;
        let manifest: oci_client::manifest::OciImageManifest = serde_json::from_slice(&body)
            .map_err(|e| AppError::Provisioning(format!("the snapshot's manifest: {e}")))?;
        let reference = repo.at(&remote.manifest);
        let label = format!("snapshot {id}");
        let from = Source {
            reference: &reference,
            label: &label,
        };
        let mut layers = Vec::new();
        for l in &manifest.layers {
            let key = l
                .annotations
                .as_ref()
                .and_then(|a| a.get(LAYER_KEY))
                .filter(|k| valid_key(k))
                .cloned()
                .unwrap_or_else(|| l.digest.replace(':', "_"));
            let dir = self
                .images
                .fetch_layer(repo.client(), from, l, &key, &progress)
                .await
                .map_err(registry)?;
            layers.push(dir);
        }
        let checkpoint = manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHECKPOINT_ANNOTATION));
        let memory = match checkpoint {
            Some(digest) => Some(self.pull_checkpoint(repo, from, id, digest).await?),
            None => None,
        };
        Ok(Base {
            layers,
            memory,
            ..base.clone()
        })
    }

    /// Fetch a memory checkpoint into this node's `memory_dir`.
    async fn pull_checkpoint(
        &self,
        repo: &Repo,
        from: Source<'_>,
        id: &str,
        digest: &str,
    ) -> Result<PathBuf, AppError> {
        let io = |e: std::io::Error| AppError::Internal(format!("checkpoint scratch file: {e}"));
        let tmp = tempfile::NamedTempFile::new_in(self.images.tmp_dir()).map_err(io)?;
        let d = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            ..Default::default()
        };
        download(repo.client(), from, &d, tmp.as_file(), &None)
            .await
            .map_err(registry)?;
        let dir = self.memory_dir(id);
        let (blob, out) = (tmp.path().to_path_buf(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&out);
            super::snapshot_memory::unpack(&blob, &out).inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&out);
            })
        })
        .await??;
        drop(tmp);
        Ok(dir)
    }

    /// Where what this node holds of snapshot `id` is recorded.
    fn held_record(&self, id: &str) -> PathBuf {
        PathBuf::from(&self.settings.state_dir)
            .join("snapshots/held")
            .join(format!("{id}.json"))
    }

    /// Record that this node holds `base` of snapshot `id` (a cluster's node only: alone,
    /// a snapshot is only ever removed here).
    pub(super) fn hold(&self, id: &str, base: &Base) -> Result<(), AppError> {
        if self.node_name().is_none() {
            return Ok(());
        }
        let path = self.held_record(id);
        let io = |e: std::io::Error| AppError::Internal(format!("{}: {e}", path.display()));
        let dir = path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        std::fs::write(tmp.path(), serde_json::to_vec(base).unwrap_or_default()).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Remove what this node holds of snapshots that are gone: their checkpoint, and their
    /// own layer when no sandbox or snapshot stands on it.
    pub fn sweep_held(&self) {
        let dir = PathBuf::from(&self.settings.state_dir).join("snapshots/held");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if !matches!(self.store.snapshot_exists(id), Ok(false)) {
                continue;
            }
            let held = std::fs::read(&path)
                .ok()
                .and_then(|t| serde_json::from_slice::<Base>(&t).ok())
                .unwrap_or_default();
            match self.remove_files(id, &held) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                    tracing::info!(snapshot = %id, "removed this node's files of a removed snapshot");
                }
                Err(e) => {
                    tracing::warn!(snapshot = %id, error = %e, "removing a removed snapshot's files")
                }
            }
        }
    }

    /// Remove a removed snapshot's copy in the cluster's registry (its blobs go at the
    /// registry's next garbage collection).
    pub(super) async fn unpublish_snapshot(&self, base: &Base) {
        let (Some(remote), Some(repo)) = (&base.remote, self.snapshot_repo()) else {
            return;
        };
        if repo.name() != remote.repository {
            return;
        }
        if let Err(e) = repo.delete_manifest(&remote.manifest).await {
            tracing::warn!(error = %e, "removing a snapshot's copy from the registry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = format!("sha256_{}", "a".repeat(64));
        assert!(valid_key(&k));
        for bad in [
            "sha256_../../etc",
            "sha256_",
            "sha512_aa",
            &format!("sha256_{}", "g".repeat(64)),
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert_eq!(key_of(&PathBuf::from("/x/layers").join(&k)).unwrap(), k);
        assert!(key_of(Path::new("/x/layers/evil")).is_err());
    }
}
