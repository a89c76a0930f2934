//! Snapshots: a name, a state, and the layers a sandbox made from it starts on.

use rusqlite::{OptionalExtension, Row, params};

use islo_api::SnapshotStatus;

use super::{Store, StoreError};

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub sandbox_id: Option<String>,
    pub status: SnapshotStatus,
    pub status_reason: Option<String>,
    pub size_bytes: Option<u64>,
    pub checksum: Option<String>,
    pub image: String,
    /// JSON: `layers` (paths, lowest first), `image_env`, `env`, `workdir`.
    pub base: String,
    pub created_at: String,
}

const COLUMNS: &str = "id, tenant_id, name, sandbox_id, status, status_reason, size_bytes, checksum, image, base, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<SnapshotRow> {
    Ok(SnapshotRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        sandbox_id: r.get(3)?,
        status: super::closed(r, 4, SnapshotStatus::parse, "snapshot status")?,
        status_reason: r.get(5)?,
        size_bytes: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
        checksum: r.get(7)?,
        image: r.get(8)?,
        base: r.get(9)?,
        created_at: r.get(10)?,
    })
}

impl Store {
    /// Insert a snapshot; [`StoreError::NameTaken`] when the tenant already has the name.
    pub fn insert_snapshot(&self, s: &SnapshotRow) -> Result<(), StoreError> {
        self.write(|db| {
        let res = db.execute(
            &format!("INSERT INTO snapshots ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
            params![
                s.id, s.tenant_id, s.name, s.sandbox_id, s.status.as_str(), s.status_reason,
                s.size_bytes.map(|v| v as i64), s.checksum, s.image, s.base, s.created_at
            ],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::NameTaken(s.name.clone()))
            }
            other => {
                other?;
                refresh_layer_refs(db, &s.id)
            }
        }
    })
    }
}

/// Re-read which layers snapshot `id` stands on from its base.
fn refresh_layer_refs(tx: &super::Tx<'_>, id: &str) -> Result<(), StoreError> {
    {
        tx.execute("DELETE FROM layer_refs WHERE snapshot_id = ?1", [id])?;
        tx.execute(
            "INSERT INTO layer_refs (layer, snapshot_id) SELECT j.value, n.id FROM snapshots n, \
             json_each(n.base, '$.layers') j WHERE n.id = ?1 AND json_valid(n.base)",
            [id],
        )?;
        Ok(())
    }
}

impl Store {
    pub fn snapshot_by_name(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<SnapshotRow>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!("SELECT {COLUMNS} FROM snapshots WHERE tenant_id = ?1 AND name = ?2"),
                params![tenant_id, name],
                from_row,
            )
            .optional()?)
    }

    /// A tenant's snapshots, newest first, paged; and how many there are.
    pub fn list_snapshots(
        &self,
        tenant_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<SnapshotRow>, u64), StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {COLUMNS} FROM snapshots WHERE tenant_id = ?1 ORDER BY created_at DESC, name LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = st
            .query_map(params![tenant_id, limit, offset], from_row)?
            .collect::<Result<_, _>>()?;
        let total: i64 = db.query_row(
            "SELECT COUNT(*) FROM snapshots WHERE tenant_id = ?1",
            [tenant_id],
            |r| r.get(0),
        )?;
        Ok((rows, total as u64))
    }

    /// Record the outcome of a save.
    pub fn finish_snapshot(
        &self,
        id: &str,
        status: SnapshotStatus,
        reason: Option<&str>,
        size: Option<u64>,
        checksum: Option<&str>,
        base: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
            "UPDATE snapshots SET status = ?2, status_reason = ?3, size_bytes = ?4, checksum = ?5, \
             base = COALESCE(?6, base) WHERE id = ?1",
            params![
                id,
                status.as_str(),
                reason,
                size.map(|v| v as i64),
                checksum,
                base
            ],
        )?;
            refresh_layer_refs(db, id)
        })
    }

    /// Whether a snapshot with id `id` exists (in any state).
    pub fn snapshot_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.db().query_row(
            "SELECT EXISTS (SELECT 1 FROM snapshots WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )?)
    }

    pub fn delete_snapshot(&self, id: &str) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute("DELETE FROM snapshots WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Whether a live sandbox or another snapshot still stands on the layer at `path`.
    pub fn layer_in_use(&self, path: &str, except_snapshot: &str) -> Result<bool, StoreError> {
        Ok(self.db().query_row(
            "SELECT EXISTS (SELECT 1 FROM layer_refs WHERE layer = ?1 \
             AND (snapshot_id IS NULL OR snapshot_id <> ?2))",
            params![path, except_snapshot],
            |r| r.get(0),
        )?)
    }

    /// Snapshots left `saving` by a crash: they can never finish.
    pub fn fail_unfinished_snapshots(&self) -> Result<usize, StoreError> {
        // In a cluster, only saves of this node's sandboxes: another node may be saving now.
        let node = self.node();
        self.write(|db| {
            Ok(db.execute(
                "UPDATE snapshots SET status = 'failed', status_reason = 'islod stopped while saving' \
                 WHERE status = 'saving' AND (sandbox_id IN (SELECT id FROM sandboxes WHERE node = ?1) \
                 OR (sandbox_id IS NULL AND ?1 = ''))",
                rusqlite::params![node],
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sandboxes::tests::row;

    fn snapshot(tenant: &str, name: &str, base: &str) -> SnapshotRow {
        SnapshotRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.into(),
            name: name.into(),
            sandbox_id: None,
            status: SnapshotStatus::Ready,
            status_reason: None,
            size_bytes: None,
            checksum: None,
            image: "busybox".into(),
            base: base.into(),
            created_at: crate::store::now_rfc3339(),
        }
    }

    #[test]
    fn a_layer_is_in_use_while_a_live_sandbox_or_another_snapshot_stands_on_it() {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("a").unwrap();
        let sb = row(&t, "box");
        s.insert_sandbox(&sb).unwrap();
        let mut spec = crate::store::sandboxes::tests::spec_with_layers(&["/l/1", "/l/2"]);
        s.set_runtime_spec(&sb.id, &spec).unwrap();
        assert!(s.layer_in_use("/l/1", "").unwrap());
        assert!(!s.layer_in_use("/l/9", "").unwrap());
        // Written again (a restart moved it), the refs follow the spec.
        spec.spec.as_mut().unwrap().layers.pop();
        s.set_runtime_spec(&sb.id, &spec).unwrap();
        assert!(!s.layer_in_use("/l/2", "").unwrap());
        s.mark_deleted(&sb.id, "2026-01-01T00:00:00Z").unwrap();
        assert!(
            !s.layer_in_use("/l/1", "").unwrap(),
            "a deleted sandbox holds nothing"
        );

        let snap = snapshot(&t, "snap", "{}");
        s.insert_snapshot(&snap).unwrap();
        s.finish_snapshot(
            &snap.id,
            SnapshotStatus::Ready,
            None,
            None,
            None,
            Some(r#"{"layers":["/l/1","/l/3"]}"#),
        )
        .unwrap();
        assert!(s.layer_in_use("/l/3", "").unwrap());
        assert!(
            !s.layer_in_use("/l/3", &snap.id).unwrap(),
            "but for the snapshot itself"
        );
        s.delete_snapshot(&snap.id).unwrap();
        assert!(!s.layer_in_use("/l/1", "").unwrap());
    }
}
