//! State in SQLite: tenants, API keys, session tokens, sandboxes, images, execs, the audit log,
//! agent sessions and snapshots.
//!
//! One connection behind a mutex (WAL, so `islod keys` may write while the server runs);
//! queries are short. Schema changes are migrations, in order, never edited once released.

mod activity;
mod agent;
mod audit;
mod auth;
mod environments;
mod execs;
mod gateway;
mod images;
mod netgw;
mod replica;
mod sandboxes;
mod sessions;
mod setup;
mod shares;
mod snapshots;
mod warm;
mod webhooks;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

pub use activity::ActivityRow;
pub use agent::{AgentEventRow, AgentSessionRow, Transcript};
pub use audit::{AuditSession, AuditWrite, LogLine};
pub use auth::KeyRow;
pub use environments::{EntryRow, EnvRow};
pub use execs::ExecRow;
pub use images::ImageRow;
pub use netgw::{EventFilter, EventScope, SecretMeta};
pub use replica::{Batch, Ledger, LedgerError, MemLedger, Replica, Tx};
pub use sandboxes::{Binding, Op, SandboxFilter, SandboxRow, StoredSpec};
pub use shares::ShareRow;
pub use snapshots::SnapshotRow;
pub use webhooks::{DeliveryFilter, DeliveryRow, WebhookRow};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database schema: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("stored record {what} is malformed: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("sandbox name {0} is taken")]
    NameTaken(String),
    #[error("{0}")]
    Exhausted(String),
    #[error("the state database {path} is damaged: {detail}")]
    Damaged { path: String, detail: String },
    /// The cluster's store refused or could not take a write (no quorum, unreachable).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// This node's replica of the cluster's state cannot go on.
    #[error("cluster replica: {0}")]
    Replica(String),
}

const SCHEMA_V1: &str = r#"
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE session_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    expires_at INTEGER NOT NULL
);
CREATE TABLE sandboxes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    disk_gb INTEGER NOT NULL,
    env TEXT NOT NULL,
    workdir TEXT NOT NULL,
    runtime_spec TEXT NOT NULL,
    request_id TEXT,
    request_hash TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    deleted_at TEXT
);
CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(tenant_id, name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX sandboxes_request ON sandboxes(tenant_id, request_id) WHERE request_id IS NOT NULL;
CREATE TABLE images (
    reference TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    config TEXT NOT NULL,
    layers TEXT NOT NULL,
    pulled_at TEXT NOT NULL
);
CREATE TABLE execs (
    id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    status TEXT NOT NULL,
    exit_code INTEGER,
    stdout BLOB NOT NULL DEFAULT x'',
    stderr BLOB NOT NULL DEFAULT x'',
    truncated INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
"#;

/// Sessions a stop ended, listed as `dead` until recreated or deleted.
const SCHEMA_V2: &str = r#"
CREATE TABLE ended_sessions (
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    name TEXT NOT NULL,
    started_at_ms INTEGER,
    PRIMARY KEY (sandbox_id, name)
);
"#;

/// The audit log: every exec and terminal session, and what went in and out.
const SCHEMA_V3: &str = r#"
CREATE TABLE exec_sessions (
    id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    interactive INTEGER NOT NULL,
    user TEXT NOT NULL,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    exit_code INTEGER,
    bytes INTEGER NOT NULL DEFAULT 0,
    cut INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX exec_sessions_by_sandbox ON exec_sessions(sandbox_id, started_at);
CREATE TABLE exec_log_lines (
    exec_id TEXT NOT NULL REFERENCES exec_sessions(id),
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    stream TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (exec_id, seq)
);
"#;

/// Agent sessions ingested from coding-agent transcripts, and their events.
const SCHEMA_V4: &str = r#"
CREATE TABLE agent_sessions (
    id INTEGER PRIMARY KEY,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    agent_id TEXT,
    parent_path TEXT,
    harness TEXT NOT NULL,
    cwd TEXT NOT NULL DEFAULT '',
    git_branch TEXT NOT NULL DEFAULT '',
    first_user_text TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    ingested_bytes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (sandbox_id, path)
);
CREATE TABLE agent_events (
    session_id INTEGER NOT NULL REFERENCES agent_sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    actor TEXT NOT NULL,
    model TEXT NOT NULL,
    message_id TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_creation_tokens INTEGER,
    cache_read_tokens INTEGER,
    cwd TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX agent_events_by_time ON agent_events(session_id, ts_ms);
"#;

/// Snapshots: the layers a sandbox made from one starts on.
const SCHEMA_V5: &str = r#"
CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    sandbox_id TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    size_bytes INTEGER,
    checksum TEXT,
    image TEXT NOT NULL,
    base TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
"#;

/// Setup steps run once after a sandbox's creation.
const SCHEMA_V6: &str = r#"
CREATE TABLE setup_steps (
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    stdout TEXT,
    stderr TEXT,
    exit_code INTEGER,
    exec_id TEXT,
    PRIMARY KEY (sandbox_id, idx)
);
"#;

/// Gateway profiles and their rules.
const SCHEMA_V7: &str = r#"
CREATE TABLE gateway_profiles (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    description TEXT,
    default_action TEXT NOT NULL,
    internet_enabled INTEGER NOT NULL,
    is_default INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE TABLE gateway_rules (
    id TEXT PRIMARY KEY,
    profile_id TEXT NOT NULL REFERENCES gateway_profiles(id),
    priority INTEGER NOT NULL,
    host_pattern TEXT NOT NULL,
    path_pattern TEXT,
    methods TEXT,
    action TEXT NOT NULL,
    rate_limit_rpm INTEGER,
    provider_key TEXT,
    auth_strategy TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX gateway_rules_by_profile ON gateway_rules(profile_id, priority);
"#;

/// Sandbox links (a slot per live networked sandbox), secrets, and gateway decisions.
const SCHEMA_V8: &str = r#"
ALTER TABLE sandboxes ADD COLUMN net_slot INTEGER;
CREATE UNIQUE INDEX sandboxes_by_net_slot ON sandboxes(net_slot) WHERE net_slot IS NOT NULL;
CREATE TABLE secrets (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    env_vars TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE gateway_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    sandbox_id TEXT NOT NULL,
    at TEXT NOT NULL,
    scheme TEXT NOT NULL,
    host TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    rule_id TEXT,
    action TEXT NOT NULL,
    status INTEGER NOT NULL,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX gateway_events_by_sandbox ON gateway_events(sandbox_id, id);
"#;

/// Secrets injected toward their own hosts.
const SCHEMA_V9: &str = r#"
ALTER TABLE secrets ADD COLUMN hosts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE secrets ADD COLUMN auth_strategy TEXT;
"#;

/// The lifecycle operation a sandbox is in the middle of (NULL when none): what start-up
/// reconciliation finishes or undoes after a crash.
const SCHEMA_V10: &str = r#"
ALTER TABLE sandboxes ADD COLUMN pending_op TEXT;
"#;

/// The host id range of a sandbox's user namespace (`crate::ids`), held until deletion.
const SCHEMA_V11: &str = r#"
ALTER TABLE sandboxes ADD COLUMN id_range INTEGER;
CREATE UNIQUE INDEX sandboxes_by_id_range ON sandboxes(id_range) WHERE id_range IS NOT NULL;
"#;

/// Which live sandbox or snapshot stands on which layer: "is this layer in use" is a join,
/// not a text search of the specs. Kept by the store whenever a spec or a base is written.
const SCHEMA_V12: &str = r#"
CREATE TABLE layer_refs (
    layer TEXT NOT NULL,
    sandbox_id TEXT REFERENCES sandboxes(id) ON DELETE CASCADE,
    snapshot_id TEXT REFERENCES snapshots(id) ON DELETE CASCADE,
    CHECK ((sandbox_id IS NULL) <> (snapshot_id IS NULL))
);
CREATE INDEX layer_refs_by_layer ON layer_refs(layer);
CREATE INDEX layer_refs_by_sandbox ON layer_refs(sandbox_id);
CREATE INDEX layer_refs_by_snapshot ON layer_refs(snapshot_id);
INSERT INTO layer_refs (layer, sandbox_id)
    SELECT j.value, s.id FROM sandboxes s, json_each(s.runtime_spec, '$.spec.layers') j
    WHERE s.deleted_at IS NULL AND json_valid(s.runtime_spec);
INSERT INTO layer_refs (layer, snapshot_id)
    SELECT j.value, n.id FROM snapshots n, json_each(n.base, '$.layers') j
    WHERE json_valid(n.base);
"#;

/// Shares of sandbox ports (`sh_…`, reached by an unguessable token) and every request
/// served through them. A revoked share keeps its row, so its requests stay readable.
const SCHEMA_V13: &str = r#"
CREATE TABLE shares (
    id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    token TEXT NOT NULL UNIQUE,
    port INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX shares_by_sandbox ON shares(sandbox_id);
CREATE TABLE share_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    share_id TEXT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
    at TEXT NOT NULL,
    client TEXT NOT NULL,
    user_agent TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL
);
CREATE INDEX share_requests_by_share ON share_requests(share_id);
"#;

/// API keys that expire and can be switched off; session tokens remember the key they were
/// exchanged for, so switching a key off ends them too.
const SCHEMA_V14: &str = r#"
ALTER TABLE api_keys ADD COLUMN expires_at TEXT;
ALTER TABLE api_keys ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
ALTER TABLE session_tokens ADD COLUMN key_id TEXT;
"#;

/// Environments: named sets of variables and secrets, one default per tenant.
const SCHEMA_V15: &str = r#"
CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX environments_one_default ON environments(tenant_id) WHERE is_default = 1;
CREATE TABLE environment_entries (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    placement TEXT NOT NULL,
    value TEXT,
    rule TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (environment_id, key)
);
"#;

/// Incoming webhooks (soft-deleted), their deliveries (one per idempotency key) and each
/// action's attempts.
/// A gateway profile's `tls_inspection` (`always`, as before it existed, or `when_needed`).
const SCHEMA_V18: &str = r#"
ALTER TABLE gateway_profiles ADD COLUMN tls_inspection TEXT NOT NULL DEFAULT 'always';
"#;

/// Lifecycle policies: when each sandbox was last active and how long it has run since it was
/// created or resumed (see `store::activity`).
const SCHEMA_V19: &str = r#"
CREATE TABLE sandbox_activity (
    sandbox_id TEXT PRIMARY KEY REFERENCES sandboxes(id) ON DELETE CASCADE,
    last_active_ms INTEGER NOT NULL,
    running_ms INTEGER NOT NULL DEFAULT 0
);
"#;

/// `GET /sandboxes` pages in creation order: with an index, a page reads its rows only
/// (without, every page sorted all of the tenant's sandboxes, 15 ms a page at a thousand).
const SCHEMA_V17: &str = r#"
CREATE INDEX sandboxes_live_by_created ON sandboxes(tenant_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
"#;

const SCHEMA_V16: &str = r#"
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE TABLE webhook_deliveries (
    event_id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id),
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    client TEXT NOT NULL,
    received_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    completed_at TEXT,
    last_error TEXT,
    resolved_sandbox_name TEXT NOT NULL,
    resolved_sandbox_id TEXT,
    external_event_id TEXT,
    UNIQUE (webhook_id, idempotency_key)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES webhook_deliveries(event_id),
    action_index INTEGER NOT NULL,
    action_key TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    completed_at TEXT,
    error TEXT
);
"#;

/// The cluster's place in a node's database: the last ledger entry applied (node-local), and
/// which node each sandbox lives on (empty on a single host).
const SCHEMA_V20: &str = r#"
CREATE TABLE cluster_state (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
);
ALTER TABLE sandboxes ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX sandboxes_live_by_node ON sandboxes(node) WHERE deleted_at IS NULL;
-- Link slots and host id ranges are each node's own.
DROP INDEX sandboxes_by_net_slot;
CREATE UNIQUE INDEX sandboxes_by_net_slot ON sandboxes(node, net_slot) WHERE net_slot IS NOT NULL;
DROP INDEX sandboxes_by_id_range;
CREATE UNIQUE INDEX sandboxes_by_id_range ON sandboxes(node, id_range) WHERE id_range IS NOT NULL;
"#;

const SCHEMAS: &[&str] = &[
    SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8,
    SCHEMA_V9, SCHEMA_V10, SCHEMA_V11, SCHEMA_V12, SCHEMA_V13, SCHEMA_V14, SCHEMA_V15, SCHEMA_V16,
    SCHEMA_V17, SCHEMA_V18, SCHEMA_V19, SCHEMA_V20,
];

/// The schema version this build writes.
pub(crate) fn schema_version() -> usize {
    SCHEMAS.len()
}

fn migrations() -> Migrations<'static> {
    Migrations::new(SCHEMAS.iter().map(|s| M::up(s)).collect())
}

/// The state store.
pub struct Store {
    conn: Mutex<Connection>,
    /// Set when this node is one of a cluster's: shared writes go through its ledger.
    replica: Option<Replica>,
}

impl Store {
    /// Open (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_in(path, None)
    }

    /// Open the database at `path` as this node's replica of a cluster's state (`None`:
    /// alone): it joins first (see [`replica`]), so what it serves is the cluster's.
    pub fn open_in(path: &Path, replica: Option<Replica>) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations().to_latest(&mut conn)?;
        if let Some(rep) = &replica {
            replica::join(&mut conn, rep)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            replica,
        })
    }

    /// Copy the database at `db` to `to` (one file, through SQLite, so what the write-ahead
    /// log holds is in it), replacing an older copy only once the new one is whole. A damaged
    /// database fails with [`StoreError::Damaged`] and leaves the older copy alone.
    pub fn backup(db: &Path, to: &Path) -> Result<(), StoreError> {
        let damaged = |e: rusqlite::Error| StoreError::Damaged {
            path: db.display().to_string(),
            detail: e.to_string(),
        };
        let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(damaged)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let tmp = to.with_extension("backup-partial");
        let _ = std::fs::remove_file(&tmp);
        conn.execute("VACUUM INTO ?1", [tmp.to_string_lossy()])
            .map_err(damaged)?;
        std::fs::rename(&tmp, to).map_err(|e| StoreError::Damaged {
            path: to.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// A throw-away in-memory store (tests).
    pub fn memory() -> Result<Self, StoreError> {
        Self::memory_in(None)
    }

    /// A throw-away in-memory replica (tests of replication).
    pub fn memory_in(replica: Option<Replica>) -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        migrations().to_latest(&mut conn)?;
        if let Some(rep) = &replica {
            replica::join(&mut conn, rep)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            replica,
        })
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Now, RFC 3339 in UTC.
/// Column `i` of `r` as a member of a closed set; a word outside the set is reported as a
/// corrupt `what`.
pub(crate) fn closed<T>(
    r: &rusqlite::Row<'_>,
    i: usize,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("{what} {text:?}").into(),
        )
    })
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Fixtures for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::sandboxes::tests::row;
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::migrations().validate().unwrap();
    }

    #[test]
    fn backups_are_whole_and_a_damaged_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (db, copy) = (dir.path().join("s.db"), dir.path().join("s.db.backup"));
        let s = super::Store::open(&db).unwrap();
        let tid = s.ensure_tenant("alpha").unwrap();
        super::Store::backup(&db, &copy).unwrap();
        drop(s);
        let restored = super::Store::open(&copy).unwrap();
        assert_eq!(restored.ensure_tenant("alpha").unwrap(), tid);
        std::fs::write(&db, vec![0x5a; 8192]).unwrap();
        let _ = std::fs::remove_file(db.with_extension("db-wal"));
        let e = super::Store::backup(&db, &copy).unwrap_err();
        assert!(matches!(e, super::StoreError::Damaged { .. }), "{e}");
        super::Store::open(&copy).unwrap(); // the older copy is untouched
    }
}
