//! Sandbox records: the server's intent and last observed state.

use std::collections::BTreeMap;

use islo_api::SandboxStatus;
use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};

/// A sandbox record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub image: String,
    pub status: SandboxStatus,
    pub status_reason: Option<String>,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_gb: u32,
    pub env: BTreeMap<String, String>,
    pub workdir: String,
    /// What it was made with (column `runtime_spec`, JSON), to start it again.
    pub stored: StoredSpec,
    pub request_id: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub deleted_at: Option<String>,
    /// The cluster node it lives on (empty on a single host); set by the store at insert.
    pub node: String,
}

/// What a sandbox was made with, kept as JSON in `sandboxes.runtime_spec` (its shape is the
/// one SQL reads `$.snapshot_id` and `$.gateway_profile_id` from).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredSpec {
    /// What the back end is given; `None` until the sandbox is provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<islo_runtime::SandboxSpec>,
    /// The image's environment, under the request's.
    #[serde(default)]
    pub image_env: Vec<(String, String)>,
    #[serde(default)]
    pub image_digest: Option<String>,
    /// The snapshot it started from.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// The gateway profile it is bound to (empty: the tenant's default).
    #[serde(default)]
    pub gateway_profile_id: String,
    /// What its secret placeholders are made of.
    #[serde(default)]
    pub gateway_nonce: Option<String>,
    /// The environment whose variables and secrets it gets (read at each command, so an
    /// update reaches it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    /// `false`: no internet for it, whatever its profile allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_enabled: Option<bool>,
    /// The create request's tool cache key, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// Its lifecycle policy (fixed at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<islo_api::LifecyclePolicy>,
}

impl StoredSpec {
    /// The stored text's record.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("runtime spec: {e}"))
    }

    pub(super) fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// What a sandbox records having been made from or bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Snapshot,
    GatewayProfile,
}

impl Binding {
    fn json_path(self) -> &'static str {
        match self {
            Self::Snapshot => "$.snapshot_id",
            Self::GatewayProfile => "$.gateway_profile_id",
        }
    }
}

/// A lifecycle operation in progress, recorded before the host is touched and cleared with
/// the status it ends in, so that a crash in between leaves a record of what to finish or
/// undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new sandbox is being made: undone (it never existed for the user).
    Create,
    /// A stopped sandbox is being started again: stopped again, never deleted.
    Start,
    /// Being stopped: finished.
    Stop,
    /// Being deleted: finished.
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "create" => Self::Create,
            "start" => Self::Start,
            "stop" => Self::Stop,
            "delete" => Self::Delete,
            _ => return None,
        })
    }
}

/// Filter of a list.
#[derive(Debug, Clone, Default)]
pub struct SandboxFilter {
    pub name_prefix: Option<String>,
    pub statuses: Vec<SandboxStatus>,
    /// Found in the name, the image or the id (ASCII case-insensitive).
    pub search: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// `s` as literal text inside a `LIKE … ESCAPE '\'` pattern.
fn like_escaped(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

const COLUMNS: &str = "id, tenant_id, name, image, status, status_reason, vcpus, memory_mb, disk_gb, env, workdir, \
     runtime_spec, request_id, request_hash, created_at, started_at, deleted_at, node";

/// A row as read: the record, and its status, env and spec still as text.
type RawRow = (SandboxRow, String, String, String);

fn from_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    let status: String = r.get(4)?;
    let env: String = r.get(9)?;
    Ok((
        SandboxRow {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            name: r.get(2)?,
            image: r.get(3)?,
            status: SandboxStatus::Failed,
            status_reason: r.get(5)?,
            vcpus: r.get(6)?,
            memory_mb: r.get(7)?,
            disk_gb: r.get(8)?,
            env: BTreeMap::new(),
            workdir: r.get(10)?,
            stored: StoredSpec::default(),
            request_id: r.get(12)?,
            request_hash: r.get(13)?,
            created_at: r.get(14)?,
            started_at: r.get(15)?,
            deleted_at: r.get(16)?,
            node: r.get(17)?,
        },
        status,
        env,
        r.get(11)?,
    ))
}

fn finish(raw: RawRow) -> Result<SandboxRow, StoreError> {
    let (mut row, status, env, stored) = raw;
    let corrupt = |detail: String| StoreError::Corrupt {
        what: format!("sandbox {}", row.id),
        detail,
    };
    row.status =
        SandboxStatus::parse(&status).ok_or_else(|| corrupt(format!("status {status}")))?;
    row.env = serde_json::from_str(&env).map_err(|e| corrupt(e.to_string()))?;
    row.stored = StoredSpec::parse(&stored).map_err(corrupt)?;
    Ok(row)
}

impl Store {
    /// Record a new sandbox, its [`Op::Create`] in progress. A live sandbox of the same name in
    /// the tenant makes this fail with [`StoreError::NameTaken`].
    pub fn insert_sandbox(&self, s: &SandboxRow) -> Result<(), StoreError> {
        self.write(|db| {
        let env = serde_json::to_string(&s.env).unwrap_or_else(|_| "{}".into());
        let stored = s.stored.text();
        let node = self.node();
        let res = db.execute(
            &format!("INSERT INTO sandboxes ({COLUMNS}, pending_op) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, 'create')"),
            params![
                s.id, s.tenant_id, s.name, s.image, s.status.as_str(), s.status_reason, s.vcpus, s.memory_mb,
                s.disk_gb, env, s.workdir, stored, s.request_id, s.request_hash, s.created_at,
                s.started_at, s.deleted_at, node
            ],
        );
        match res {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::NameTaken(s.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    })
    }

    fn one(&self, sql: &str, p: impl rusqlite::Params) -> Result<Option<SandboxRow>, StoreError> {
        let raw = self
            .db()
            .query_row(
                &format!("SELECT {COLUMNS} FROM sandboxes WHERE {sql}"),
                p,
                from_row,
            )
            .optional()?;
        raw.map(finish).transpose()
    }

    /// The live (not deleted) sandbox `name` of a tenant.
    pub fn sandbox_by_name(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<SandboxRow>, StoreError> {
        self.one(
            "tenant_id = ?1 AND name = ?2 AND deleted_at IS NULL",
            params![tenant, name],
        )
    }

    /// A sandbox of a tenant by id, deleted ones included.
    pub fn sandbox_by_id(&self, tenant: &str, id: &str) -> Result<Option<SandboxRow>, StoreError> {
        self.one("tenant_id = ?1 AND id = ?2", params![tenant, id])
    }

    /// A live sandbox by id, whoever owns it (what a share points at).
    pub fn live_sandbox(&self, id: &str) -> Result<Option<SandboxRow>, StoreError> {
        self.one("id = ?1 AND deleted_at IS NULL", params![id])
    }

    /// The sandbox a tenant created with `request_id`.
    pub fn sandbox_by_request(
        &self,
        tenant: &str,
        request_id: &str,
    ) -> Result<Option<SandboxRow>, StoreError> {
        self.one(
            "tenant_id = ?1 AND request_id = ?2",
            params![tenant, request_id],
        )
    }

    /// A page of a tenant's sandboxes, newest first, and the total matching.
    pub fn list_sandboxes(
        &self,
        tenant: &str,
        f: &SandboxFilter,
    ) -> Result<(Vec<SandboxRow>, u64), StoreError> {
        let mut cond = String::from("tenant_id = ?1");
        let mut args: Vec<String> = vec![tenant.to_string()];
        if let Some(p) = &f.name_prefix {
            args.push(format!("{}%", like_escaped(p)));
            cond.push_str(&format!(" AND name LIKE ?{} ESCAPE '\\'", args.len()));
        }
        if let Some(s) = &f.search {
            args.push(format!("%{}%", like_escaped(s)));
            let n = args.len();
            cond.push_str(&format!(
                " AND (name LIKE ?{n} ESCAPE '\\' OR image LIKE ?{n} ESCAPE '\\' \
                 OR id LIKE ?{n} ESCAPE '\\')"
            ));
        }
        if f.statuses.is_empty() {
            cond.push_str(" AND deleted_at IS NULL");
        } else {
            let mut ors = Vec::new();
            for s in &f.statuses {
                args.push(s.as_str().to_string());
                ors.push(format!("?{}", args.len()));
            }
            cond.push_str(&format!(" AND status IN ({})", ors.join(", ")));
        }
        let db = self.db();
        let total = db.query_row(
            &format!("SELECT COUNT(*) FROM sandboxes WHERE {cond}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get::<_, i64>(0),
        )? as u64;
        let mut st = db.prepare(&format!(
            "SELECT {COLUMNS} FROM sandboxes WHERE {cond} ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
            f.limit, f.offset
        ))?;
        let raw = st
            .query_map(rusqlite::params_from_iter(args.iter()), from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        drop(st);
        drop(db);
        Ok((
            raw.into_iter().map(finish).collect::<Result<_, _>>()?,
            total,
        ))
    }

    /// Every live sandbox of every tenant on this node (reconciliation at start-up,
    /// idle and lifecycle checks).
    pub fn live_sandboxes(&self) -> Result<Vec<SandboxRow>, StoreError> {
        self.live_where("")
    }

    /// The live sandboxes on this node with a lifecycle policy (read every second: the
    /// condition is SQLite's, so the others' records are not decoded).
    pub fn live_with_lifecycle(&self) -> Result<Vec<SandboxRow>, StoreError> {
        self.live_where("AND json_extract(runtime_spec, '$.lifecycle') IS NOT NULL")
    }

    fn live_where(&self, cond: &str) -> Result<Vec<SandboxRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {COLUMNS} FROM sandboxes WHERE deleted_at IS NULL AND node = ?1 {cond}"
        ))?;
        let raw = st
            .query_map([self.node()], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        drop(st);
        drop(db);
        raw.into_iter().map(finish).collect()
    }

    /// The ids of the running sandboxes on this node (the agent watchdog's look).
    pub fn running_ids(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT id FROM sandboxes WHERE deleted_at IS NULL AND node = ?1 AND status = ?2",
        )?;
        let ids = st
            .query_map(params![self.node(), SandboxStatus::Running.as_str()], |r| {
                r.get(0)
            })?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    /// What a tenant's sandboxes (not deleted) hold: (count, vCPUs, memory MB, disk GB).
    pub fn tenant_usage(&self, tenant: &str) -> Result<(u64, u64, u64, u64), StoreError> {
        Ok(self.db().query_row(
            "SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(memory_mb), 0), \
             COALESCE(SUM(disk_gb), 0) FROM sandboxes WHERE tenant_id = ?1 AND deleted_at IS NULL",
            [tenant],
            |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok((n(0)?, n(1)?, n(2)?, n(3)?))
            },
        )?)
    }

    /// Sandboxes of every tenant that run or are starting. (Read on every create: the
    /// condition on `deleted_at` lets SQLite take the index of live sandboxes rather than read
    /// every record ever made, 2.4 ms with 5,000 made.)
    pub fn live_count(&self) -> Result<u64, StoreError> {
        Ok(self.db().query_row(
            "SELECT COUNT(*) FROM sandboxes WHERE deleted_at IS NULL AND node = ?1 \
             AND status IN ('running', 'starting')",
            [self.node()],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Sandboxes recorded on this node (not deleted), and those running.
    pub fn node_counts(&self) -> Result<(u64, u64), StoreError> {
        self.counts_on(self.node())
    }

    /// Sandboxes recorded on node `node` (not deleted), and those running.
    pub fn counts_on(&self, node: &str) -> Result<(u64, u64), StoreError> {
        Ok(self.db().query_row(
            "SELECT COUNT(*), COALESCE(SUM(status = 'running'), 0) FROM sandboxes \
             WHERE deleted_at IS NULL AND node = ?1",
            [node],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// Mark the live sandboxes of node `node` failed with `reason` (its lease lapsed); how
    /// many were not already.
    pub fn fail_lost_node(&self, node: &str, reason: &str) -> Result<usize, StoreError> {
        self.write(|db| {
            Ok(db.execute(
                "UPDATE sandboxes SET status = 'failed', status_reason = ?2 \
                 WHERE node = ?1 AND deleted_at IS NULL AND pending_op IS NULL \
                 AND (status != 'failed' OR status_reason IS NOT ?2)",
                params![node, reason],
            )?)
        })
    }

    /// The nodes live sandboxes are recorded on.
    pub fn sandbox_nodes(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT DISTINCT node FROM sandboxes WHERE deleted_at IS NULL ORDER BY node",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Count of running sandboxes.
    pub fn running_count(&self) -> Result<u64, StoreError> {
        Ok(self.db().query_row(
            "SELECT COUNT(*) FROM sandboxes WHERE deleted_at IS NULL AND node = ?1 \
             AND status = 'running'",
            [self.node()],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Record that `op` begins, with the status the sandbox shows meanwhile.
    pub fn begin_op(&self, id: &str, op: Op, status: SandboxStatus) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
            "UPDATE sandboxes SET status = ?2, status_reason = NULL, pending_op = ?3 WHERE id = ?1",
            params![id, status.as_str(), op.as_str()],
        )?;
            Ok(())
        })
    }

    /// The operation a sandbox is in the middle of, if any.
    pub fn pending_op(&self, id: &str) -> Result<Option<Op>, StoreError> {
        let op: Option<String> = self
            .db()
            .query_row(
                "SELECT pending_op FROM sandboxes WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        op.map(|o| {
            Op::parse(&o).ok_or_else(|| StoreError::Corrupt {
                what: format!("sandbox {id}"),
                detail: format!("pending operation {o}"),
            })
        })
        .transpose()
    }

    /// Set the status (and reason), ending any operation; `started_at` is updated when given.
    pub fn set_status(
        &self,
        id: &str,
        status: SandboxStatus,
        reason: Option<&str>,
        started_at: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "UPDATE sandboxes SET status = ?2, status_reason = ?3, started_at = COALESCE(?4, started_at), \
             pending_op = NULL WHERE id = ?1",
            params![id, status.as_str(), reason, started_at],
        )?;
        Ok(())
    })
    }

    /// Record what the back end was given.
    /// Names of the live sandboxes whose stored runtime spec has `key` = `value` (what they
    /// were made from or bound to: `snapshot_id`, `gateway_profile_id`).
    pub fn sandboxes_bound_to(&self, key: Binding, value: &str) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT name FROM sandboxes WHERE deleted_at IS NULL \
             AND json_extract(runtime_spec, ?1) = ?2 ORDER BY name",
        )?;
        let rows = st.query_map(params![key.json_path(), value], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record what sandbox `id` is made with, and the layers it stands on.
    pub fn set_runtime_spec(&self, id: &str, stored: &StoredSpec) -> Result<(), StoreError> {
        self.write(|db| {
            let tx = db;
            tx.execute(
                "UPDATE sandboxes SET runtime_spec = ?2 WHERE id = ?1",
                params![id, stored.text()],
            )?;
            tx.execute("DELETE FROM layer_refs WHERE sandbox_id = ?1", [id])?;
            let layers = stored.spec.iter().flat_map(|s| &s.layers);
            for layer in layers {
                tx.execute(
                    "INSERT INTO layer_refs (layer, sandbox_id) VALUES (?1, ?2)",
                    params![layer.to_string_lossy(), id],
                )?;
            }
            Ok(())
        })
    }

    /// Record the host id range sandbox `id` holds.
    pub fn set_id_range(&self, id: &str, range: u32) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
                "UPDATE sandboxes SET id_range = ?2 WHERE id = ?1",
                params![id, range],
            )?;
            Ok(())
        })
    }

    /// The id range sandbox `id` holds.
    pub fn id_range_of(&self, id: &str) -> Result<Option<u32>, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT id_range FROM sandboxes WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .flatten())
    }

    /// The live sandbox holding id range `range`.
    pub fn id_range_holder(&self, range: u32) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT id FROM sandboxes WHERE id_range = ?1 AND deleted_at IS NULL AND node = ?2",
                params![range, self.node()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Mark deleted: the name is free again, the record stays readable by id.
    pub fn mark_deleted(&self, id: &str, at: &str) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "UPDATE sandboxes SET status = 'deleted', status_reason = NULL, deleted_at = ?2, net_slot = NULL, \
             id_range = NULL, pending_op = NULL WHERE id = ?1",
            params![id, at],
        )?;
        db
            .execute("DELETE FROM layer_refs WHERE sandbox_id = ?1", [id])?;
        db.execute(
            "UPDATE shares SET revoked_at = ?2 WHERE sandbox_id = ?1 AND revoked_at IS NULL",
            params![id, at],
        )?;
        Ok(())
    })
    }

    /// Forget a sandbox whose creation failed (it never existed for the user).
    pub fn remove_sandbox(&self, id: &str) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute("DELETE FROM execs WHERE sandbox_id = ?1", [id])?;
        db.execute("DELETE FROM ended_sessions WHERE sandbox_id = ?1", [id])?;
        db.execute("DELETE FROM setup_steps WHERE sandbox_id = ?1", [id])?;
        db.execute(
            "DELETE FROM exec_log_lines WHERE exec_id IN (SELECT id FROM exec_sessions WHERE sandbox_id = ?1)",
            [id],
        )?;
        db.execute("DELETE FROM exec_sessions WHERE sandbox_id = ?1", [id])?;
        db.execute("DELETE FROM gateway_events WHERE sandbox_id = ?1", [id])?;
        db.execute("DELETE FROM shares WHERE sandbox_id = ?1", [id])?;
        db.execute("DELETE FROM sandboxes WHERE id = ?1", [id])?;
        Ok(())
    })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stored spec standing on `layers`.
    pub(crate) fn spec_with_layers(layers: &[&str]) -> StoredSpec {
        let spec = islo_runtime::SandboxSpec {
            id: islo_runtime::SandboxId("x".into()),
            hostname: "x".into(),
            layers: layers.iter().map(Into::into).collect(),
            limits: islo_runtime::Limits {
                vcpus: 1,
                memory_bytes: 1 << 28,
                disk_bytes: 1 << 30,
                pids: 64,
            },
            user: "islo".into(),
            uid: 1000,
            network: None,
            ids: None,
            isolation: islo_runtime::Isolation::Container,
            ahead: false,
        };
        StoredSpec {
            spec: Some(spec),
            ..Default::default()
        }
    }

    pub(crate) fn row(tenant: &str, name: &str) -> SandboxRow {
        SandboxRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.into(),
            name: name.into(),
            image: "busybox".into(),
            status: SandboxStatus::Running,
            status_reason: None,
            vcpus: 1,
            memory_mb: 256,
            disk_gb: 1,
            env: BTreeMap::from([("A".into(), "1".into())]),
            workdir: "/workspace".into(),
            stored: StoredSpec::default(),
            request_id: None,
            request_hash: None,
            created_at: super::super::now_rfc3339(),
            started_at: None,
            deleted_at: None,
            node: String::new(),
        }
    }

    #[test]
    fn the_watchdogs_and_policies_narrow_reads_select_their_sandboxes() {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("a").unwrap();
        let (plain, mut timed) = (row(&t, "plain"), row(&t, "timed"));
        timed.stored.lifecycle = Some(islo_api::LifecyclePolicy {
            delete_after: Some(60),
            ..Default::default()
        });
        for r in [&plain, &timed] {
            s.insert_sandbox(r).unwrap();
            s.set_status(&r.id, SandboxStatus::Running, None, None)
                .unwrap();
        }
        let with: Vec<String> = s
            .live_with_lifecycle()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(with, ["timed"]);
        s.set_status(&plain.id, SandboxStatus::Stopped, None, None)
            .unwrap();
        assert_eq!(s.running_ids().unwrap(), [timed.id.clone()]);
    }

    #[test]
    fn an_operation_is_recorded_until_its_status_ends_it() {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("a").unwrap();
        let r = row(&t, "box");
        s.insert_sandbox(&r).unwrap();
        assert_eq!(s.pending_op(&r.id).unwrap(), Some(Op::Create));
        s.set_status(&r.id, SandboxStatus::Running, None, None)
            .unwrap();
        assert_eq!(s.pending_op(&r.id).unwrap(), None);
        s.begin_op(&r.id, Op::Stop, SandboxStatus::Stopping)
            .unwrap();
        assert_eq!(s.pending_op(&r.id).unwrap(), Some(Op::Stop));
        let now = s.sandbox_by_id(&t, &r.id).unwrap().unwrap();
        assert_eq!(now.status, SandboxStatus::Stopping);
        s.begin_op(&r.id, Op::Delete, SandboxStatus::Stopped)
            .unwrap();
        s.mark_deleted(&r.id, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(s.pending_op(&r.id).unwrap(), None);
        assert_eq!(s.pending_op("no-such-sandbox").unwrap(), None);
        s.db()
            .execute("UPDATE sandboxes SET pending_op = 'teleport'", [])
            .unwrap();
        assert!(matches!(
            s.pending_op(&r.id),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn stored_specs_read_records_as_written_since_v1() {
        assert_eq!(StoredSpec::parse("{}").unwrap(), StoredSpec::default());
        let old = r#"{"spec":{"id":"x","hostname":"h","layers":["/l/a"],"limits":{"vcpus":1,
            "memory_bytes":1,"disk_bytes":1,"pids":1},"user":"islo","uid":1000},
            "image_env":[["PATH","/bin"]],"image_digest":"sha256:d","snapshot_id":null,
            "gateway_profile_id":"p1","gateway_nonce":"n1"}"#;
        let s = StoredSpec::parse(old).unwrap();
        let spec = s.spec.clone().unwrap();
        assert_eq!((spec.layers.len(), spec.ids, spec.network), (1, None, None));
        assert_eq!(s.image_env, [("PATH".to_string(), "/bin".to_string())]);
        assert_eq!(
            (s.gateway_profile_id.as_str(), s.gateway_nonce.as_deref()),
            ("p1", Some("n1"))
        );
        assert_eq!(StoredSpec::parse(&s.text()).unwrap(), s, "written as read");
        let v: serde_json::Value = serde_json::from_str(&s.text()).unwrap();
        assert!(
            v["snapshot_id"].is_null() && v["gateway_profile_id"] == "p1",
            "SQL reads these paths"
        );
        assert!(StoredSpec::parse("{\"spec\": 3}").is_err());
    }

    #[test]
    fn an_id_range_is_held_by_one_live_sandbox_until_it_is_deleted() {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("a").unwrap();
        let (a, b) = (row(&t, "a"), row(&t, "b"));
        s.insert_sandbox(&a).unwrap();
        s.insert_sandbox(&b).unwrap();
        s.set_id_range(&a.id, 7).unwrap();
        assert_eq!(s.id_range_holder(7).unwrap(), Some(a.id.clone()));
        assert_eq!(s.id_range_of(&a.id).unwrap(), Some(7));
        assert_eq!(s.id_range_of(&b.id).unwrap(), None);
        assert!(
            s.set_id_range(&b.id, 7).is_err(),
            "two sandboxes never share a range"
        );
        assert_eq!(s.id_range_holder(8).unwrap(), None);
        s.mark_deleted(&a.id, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(s.id_range_holder(7).unwrap(), None, "rm frees it");
        s.set_id_range(&b.id, 7).unwrap();
        assert_eq!(s.id_range_holder(7).unwrap(), Some(b.id));
    }

    #[test]
    fn names_unique_per_tenant_until_deleted() {
        let s = Store::memory().unwrap();
        let a = s.ensure_tenant("a").unwrap();
        let b = s.ensure_tenant("b").unwrap();
        let first = row(&a, "demo");
        s.insert_sandbox(&first).unwrap();
        assert!(matches!(
            s.insert_sandbox(&row(&a, "demo")),
            Err(StoreError::NameTaken(_))
        ));
        s.insert_sandbox(&row(&b, "demo")).unwrap();
        assert_eq!(
            s.sandbox_by_name(&a, "demo").unwrap().unwrap().env["A"],
            "1"
        );
        assert!(
            s.sandbox_by_id(&b, &first.id).unwrap().is_none(),
            "tenant b must not see a's sandbox"
        );
        s.mark_deleted(&first.id, "2026-01-01T00:00:00Z").unwrap();
        assert!(s.sandbox_by_name(&a, "demo").unwrap().is_none());
        assert_eq!(
            s.sandbox_by_id(&a, &first.id).unwrap().unwrap().status,
            SandboxStatus::Deleted
        );
        s.insert_sandbox(&row(&a, "demo")).unwrap();
    }

    #[test]
    fn list_filters_and_pages() {
        let s = Store::memory().unwrap();
        let a = s.ensure_tenant("a").unwrap();
        for n in ["web-1", "web-2", "db_1", "web%"] {
            s.insert_sandbox(&row(&a, n)).unwrap();
        }
        let page = |prefix: Option<&str>, limit, offset| {
            let f = SandboxFilter {
                name_prefix: prefix.map(Into::into),
                limit,
                offset,
                ..Default::default()
            };
            s.list_sandboxes(&a, &f).unwrap()
        };
        assert_eq!(page(Some("web-"), 50, 0).1, 2);
        assert_eq!(page(Some("db_"), 50, 0).1, 1);
        assert_eq!(
            page(Some("web%"), 50, 0).1,
            1,
            "LIKE wildcards in the prefix are literal"
        );
        let (items, total) = page(None, 2, 1);
        assert_eq!((items.len(), total), (2, 4));
        let f = SandboxFilter {
            statuses: vec![SandboxStatus::Stopped],
            limit: 50,
            ..Default::default()
        };
        assert_eq!(s.list_sandboxes(&a, &f).unwrap().1, 0);
        let found = |q: &str| {
            let f = SandboxFilter {
                search: Some(q.into()),
                limit: 50,
                ..Default::default()
            };
            s.list_sandboxes(&a, &f).unwrap().1
        };
        assert_eq!(found("WEB"), 3, "case-insensitive, anywhere in the name");
        assert_eq!(found("b_"), 1, "wildcards are literal");
        assert_eq!(found("nothing-like-it"), 0);
    }
}
