//! Snapshots: a sandbox's filesystem saved as one more layer over the layers it started on.
//!
//! A save exports the sandbox's writable layer (the driver freezes a running sandbox while it
//! is cut), unpacks it into the layer cache under its sha256, and records the layer list. A
//! sandbox made from the snapshot mounts that list read-only under its own fresh writable
//! layer, so any number of them share the snapshot's storage, and a snapshot of such a
//! sandbox adds only its own changes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use islo_api::{CreateSnapshotRequest, SandboxStatus, SnapshotResponse, SnapshotStatus};
use sha2::{Digest, Sha256};

use super::sandboxes::{image_env, runtime_spec};
use super::{App, AppError, Tenant};
use crate::images::LayerLimits;
use crate::sparse::SparseFile;
use crate::store::{Binding, SandboxRow, SnapshotRow, StoreError, now_rfc3339};

/// What a sandbox made from a snapshot starts with.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Base {
    pub layers: Vec<PathBuf>,
    pub image_env: Vec<(String, String)>,
    pub env: std::collections::BTreeMap<String, String>,
    pub workdir: String,
    /// A memory snapshot's checkpoint (`<state>/snapshots/memory/ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<PathBuf>,
    /// The source sandbox's placeholder nonce: the saved processes hold its placeholders, so a
    /// sandbox forked from them has the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_nonce: Option<String>,
    /// The cluster node whose cache holds `layers` and `memory` (none: a single host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Where the snapshot was copied for the cluster's other nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<super::snapshot_travel::Remote>,
}

impl Base {
    pub fn of(row: &SnapshotRow) -> Result<Self, AppError> {
        serde_json::from_str(&row.base)
            .map_err(|e| AppError::Internal(format!("snapshot {} record: {e}", row.name)))
    }
}

/// Snapshot names: 1–128 of letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), AppError> {
    let ok = (1..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AppError::Validation(format!(
            "invalid snapshot name {name:?}: use up to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

pub fn to_response(s: &SnapshotRow) -> SnapshotResponse {
    SnapshotResponse {
        id: s.id.clone(),
        name: s.name.clone(),
        status: s.status,
        sandbox_id: s.sandbox_id.clone(),
        size_bytes: s.size_bytes,
        checksum_sha256: s.checksum.clone(),
        created_at: Some(s.created_at.clone()),
        created_by: None,
        image: Some(s.image.clone()),
        status_reason: s.status_reason.clone(),
        memory: Base::of(s).is_ok_and(|b| b.memory.is_some()),
    }
}

fn default_name(sandbox: &str) -> String {
    let fmt = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    let stamp = time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default();
    format!("{sandbox}-{stamp}")
}

/// A writer that hashes and counts what passes through, and refuses more than `limit`.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
    limit: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes == 0 {
            // A running sandbox is frozen while its changes are written.
            crate::fault::point("save.writing");
        }
        if self.bytes + buf.len() as u64 > self.limit {
            return Err(std::io::Error::other(format!(
                "the sandbox's changes are larger than its disk allows ({} bytes)",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl App {
    /// A snapshot by name.
    pub fn snapshot(&self, t: &Tenant, name: &str) -> Result<SnapshotRow, AppError> {
        self.store
            .snapshot_by_name(&t.id, name)?
            .ok_or_else(|| AppError::NotFound(format!("snapshot {name}")))
    }

    /// Save a snapshot of a running or stopped sandbox. With `wait` it answers once the
    /// snapshot is `ready` (or fails); without, at once with a `saving` one.
    pub async fn save_snapshot(
        self: &Arc<Self>,
        t: &Tenant,
        req: &CreateSnapshotRequest,
        wait: bool,
    ) -> Result<SnapshotRow, AppError> {
        let Some(which) = req.sandbox_name.as_ref().or(req.sandbox_id.as_ref()) else {
            return Err(AppError::Validation("sandbox_name is required".into()));
        };
        let sb = match self.store.sandbox_by_name(&t.id, which)? {
            Some(r) => r,
            None => self.get_by_id(t, which)?,
        };
        if !matches!(sb.status, SandboxStatus::Running | SandboxStatus::Stopped) {
            return Err(AppError::InvalidState {
                name: sb.name,
                status: sb.status,
                hint: "only running or stopped sandboxes can be saved",
            });
        }
        let memory = req.memory == Some(true);
        if memory && sb.status != SandboxStatus::Running {
            return Err(AppError::InvalidState {
                name: sb.name,
                status: sb.status,
                hint: "only a running sandbox's memory can be saved",
            });
        }
        let name = req.name.clone().unwrap_or_else(|| default_name(&sb.name));
        validate_name(&name)?;
        let row = SnapshotRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: t.id.clone(),
            name: name.clone(),
            sandbox_id: Some(sb.id.clone()),
            status: SnapshotStatus::Saving,
            status_reason: None,
            size_bytes: None,
            checksum: None,
            image: sb.image.clone(),
            base: "{}".into(),
            created_at: now_rfc3339(),
        };
        match self.store.insert_snapshot(&row) {
            Err(StoreError::NameTaken(n)) => {
                return Err(AppError::Conflict(format!(
                    "snapshot {n} already exists; choose another --name or remove it first"
                )));
            }
            other => other?,
        }
        let app = self.clone();
        let (snap_id, tenant, saved) = (row.id.clone(), t.clone(), row.clone());
        let job = async move {
            let outcome = app.capture(&sb, memory.then_some(snap_id.as_str())).await;
            let recorded = match outcome {
                Ok((mut base, size, digest)) => {
                    let reason = app.publish_saved(&saved, &mut base).await;
                    if let Err(e) = app.hold(&snap_id, &base) {
                        tracing::warn!(snapshot = %name, error = %e, "recording a snapshot's files");
                    }
                    let base = serde_json::to_string(&base).unwrap_or_default();
                    tracing::info!(snapshot = %name, sandbox = %sb.name, size, "snapshot saved");
                    app.store.finish_snapshot(
                        &snap_id,
                        SnapshotStatus::Ready,
                        reason.as_deref(),
                        Some(size),
                        Some(&digest),
                        Some(&base),
                    )
                }
                Err(e) => {
                    tracing::warn!(snapshot = %name, error = %e, "snapshot failed");
                    let reason = e.to_string();
                    app.store.finish_snapshot(
                        &snap_id,
                        SnapshotStatus::Failed,
                        Some(&reason),
                        None,
                        None,
                        None,
                    )
                }
            };
            recorded.map_err(AppError::from)?;
            app.snapshot(&tenant, &name)
        };
        if wait {
            let done = job.await?;
            if done.status == SnapshotStatus::Failed {
                return Err(AppError::Provisioning(format!(
                    "saving snapshot {}: {}",
                    done.name,
                    done.status_reason.unwrap_or_default()
                )));
            }
            return Ok(done);
        }
        tokio::spawn(job);
        Ok(row)
    }

    /// In a cluster with a snapshot registry, copy a saved snapshot there (into `base`); a
    /// failure leaves it on this node only, which its reason says.
    async fn publish_saved(&self, row: &SnapshotRow, base: &mut Base) -> Option<String> {
        match self.publish_snapshot(row, base).await {
            Ok(remote) => {
                base.remote = remote;
                None
            }
            Err(e) => {
                tracing::warn!(snapshot = %row.name, error = %e, "copying a snapshot to the registry");
                Some(format!(
                    "kept on node {} only (sandboxes from it start there): {e}",
                    self.node_name().unwrap_or_default()
                ))
            }
        }
    }

    /// Remove this node's files of the removed snapshot `id` (`base`: the files it had): its
    /// checkpoint, and its own layer when no sandbox or snapshot stands on it.
    pub(super) fn remove_files(&self, id: &str, base: &Base) -> Result<(), AppError> {
        let memory = self.memory_dir(id);
        if memory.exists()
            && let Err(e) = std::fs::remove_dir_all(&memory)
        {
            tracing::warn!(snapshot = %id, error = %e, "removing its checkpoint");
        }
        if let Some(own) = base.layers.last() {
            let path = own.display().to_string();
            if self.images.owns_layer(own)
                && !self.store.layer_in_use(&path, id)?
                && let Err(e) = std::fs::remove_dir_all(own)
            {
                tracing::warn!(snapshot = %id, layer = %path, error = %e, "removing its layer");
            }
        }
        Ok(())
    }

    /// Where a memory snapshot's checkpoint is kept.
    pub(super) fn memory_dir(&self, snapshot_id: &str) -> PathBuf {
        PathBuf::from(&self.settings.state_dir)
            .join("snapshots/memory")
            .join(snapshot_id)
    }

    /// Cut the sandbox's changes into a cached layer; the base a sandbox from it starts on.
    /// With `memory` (the snapshot's id), its processes are saved first.
    async fn capture(
        self: &Arc<Self>,
        sb: &SandboxRow,
        memory: Option<&str>,
    ) -> Result<(Base, u64, String), AppError> {
        let lock = self.op_lock(&sb.id);
        let _g = lock.lock().await;
        let spec = runtime_spec(sb)?;
        let checkpoint = match memory {
            Some(snap) => {
                let out = self.memory_dir(snap);
                let (s, o) = (spec.clone(), out.clone());
                if let Some(parent) = out.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| AppError::Internal(format!("{}: {e}", parent.display())))?;
                }
                self.blocking(move |d| d.checkpoint_to(&s, &o)).await?;
                Some(out)
            }
            None => None,
        };
        let mut layers = spec.layers.clone();
        let app = self.clone();
        let label = format!("snapshot of {}", sb.name);
        let io = |e: std::io::Error| AppError::Internal(format!("snapshot scratch file: {e}"));
        // What the sandbox's disk can hold is all a snapshot may store, however large its
        // files claim to be; holes (sparse files) stay holes in the scratch file and the layer.
        let disk = u64::from(sb.disk_gb) << 30;
        let limits = LayerLimits {
            content: disk,
            stream: disk + disk / 4 + (64 << 20),
        };
        let (bytes, digest, dir) = tokio::task::spawn_blocking(move || {
            let tmp = tempfile::NamedTempFile::new_in(app.images.tmp_dir()).map_err(io)?;
            let mut w = Hashing {
                inner: SparseFile::new(tmp.reopen().map_err(io)?),
                hasher: Sha256::new(),
                bytes: 0,
                limit: limits.stream,
            };
            app.driver.export_changes(&spec, &mut w)?;
            w.inner.finish().map_err(io)?;
            let digest = format!("sha256:{}", hex::encode(w.hasher.finalize()));
            let dir = app
                .images
                .add_layer(tmp.reopen().map_err(io)?, &digest, &label, limits)?;
            Ok::<_, AppError>((w.bytes, digest, dir))
        })
        .await??;
        layers.push(dir);
        let base = Base {
            layers,
            image_env: image_env(sb),
            env: sb.env.clone(),
            workdir: sb.workdir.clone(),
            gateway_nonce: checkpoint.as_ref().and(sb.stored.gateway_nonce.clone()),
            memory: checkpoint,
            node: self.node_name(),
            remote: None,
        };
        Ok((base, bytes, digest))
    }

    /// A tenant's snapshots, newest first.
    pub fn list_snapshots(
        &self,
        t: &Tenant,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Result<(Vec<SnapshotRow>, u64, u32, u32), AppError> {
        let (limit, offset) = (limit.unwrap_or(100).clamp(1, 1000), offset.unwrap_or(0));
        let (rows, total) = self.store.list_snapshots(&t.id, limit, offset)?;
        Ok((rows, total, limit, offset))
    }

    /// Remove a snapshot no sandbox stands on; its layer goes when nothing else uses it.
    pub async fn delete_snapshot(&self, t: &Tenant, name: &str) -> Result<(), AppError> {
        let s = self.snapshot(t, name)?;
        if s.status == SnapshotStatus::Saving {
            return Err(AppError::Conflict(format!(
                "snapshot {name} is still being saved; remove it once it is ready"
            )));
        }
        let users = self.store.sandboxes_bound_to(Binding::Snapshot, &s.id)?;
        if !users.is_empty() {
            return Err(AppError::Conflict(format!(
                "snapshot {name} is in use by sandbox(es) {}; remove them first",
                users.join(", ")
            )));
        }
        self.store.delete_snapshot(&s.id)?;
        let base = Base::of(&s).unwrap_or_default();
        self.unpublish_snapshot(&base).await;
        self.remove_files(&s.id, &base)?;
        tracing::info!(snapshot = %name, "snapshot removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["before-refactor", "a", "v1.2_x", "sb-20260101-101010"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-x", ".x", "a/b", "a b", &"x".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
