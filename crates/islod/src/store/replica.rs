//! One store for one node or for a cluster: the shared tables replicated through a ledger.
//!
//! Every write goes through [`Store::write`]: one SQLite transaction whose statements on
//! *shared* tables (tenants, keys, sandbox records, gateway profiles, …; [`SHARED`]) are
//! recorded with their parameters. Alone, the transaction simply commits. In a cluster the
//! batch is appended to the [`Ledger`] (etcd) on the condition that nothing was appended since
//! this replica's last applied entry; only then does the local transaction commit. When
//! another node got there first, the transaction is rolled back, the missed entries are
//! applied and the closure runs again on the new state, so every node applies the same
//! statements to the same state in the same order (optimistic, serializable writes, as
//! rqlite does over Raft, with etcd's Raft log here). Node-local tables (audit log, gateway
//! decisions, layer cache, …) are written in the same transaction but never leave the node.

use std::sync::Arc;

use rusqlite::types::{ToSql, ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// Tables whose rows are the cluster's, replicated to every node. Every other table is the
/// node's own.
pub const SHARED: &[&str] = &[
    "tenants",
    "api_keys",
    "session_tokens",
    "sandboxes",
    "snapshots",
    "layer_refs",
    "gateway_profiles",
    "gateway_rules",
    "secrets",
    "shares",
    "environments",
    "environment_entries",
    "webhooks",
];

/// One replicated value (SQLite's five types).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(#[serde(with = "b64")] Vec<u8>),
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

impl ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Val::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Val::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Val::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Val::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn val_of(p: &dyn ToSql) -> rusqlite::Result<Val> {
    let v = match p.to_sql()? {
        ToSqlOutput::Borrowed(r) => {
            Value::try_from(r).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
        }
        ToSqlOutput::Owned(v) => v,
        other => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("{other:?} cannot be replicated").into(),
            ));
        }
    };
    Ok(match v {
        Value::Null => Val::Null,
        Value::Integer(i) => Val::Int(i),
        Value::Real(f) => Val::Real(f),
        Value::Text(t) => Val::Text(t),
        Value::Blob(b) => Val::Blob(b),
    })
}

/// One recorded statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Val>,
}

/// What one write transaction did to the shared tables, applied whole or not at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The schema version the statements were written for: a node on an older one stops
    /// applying instead of guessing.
    pub schema: usize,
    /// The node that wrote it.
    pub node: String,
    pub stmts: Vec<Stmt>,
}

/// Errors of a ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The ledger cannot be reached or has no quorum: writes fail, reads of this replica work.
    #[error("the cluster store is unavailable: {0}")]
    Unavailable(String),
    #[error("the cluster store holds a malformed entry {seq}: {detail}")]
    Corrupt { seq: u64, detail: String },
}

/// The ordered, durable log of shared writes that every replica applies: etcd in a cluster
/// ([`crate::cluster::EtcdLedger`]), an in-memory one in tests ([`MemLedger`]).
pub trait Ledger: Send + Sync {
    /// The sequence number of the last entry (0 when empty).
    fn head(&self) -> Result<u64, LedgerError>;
    /// Entries after `seq`, in order (at most `limit`).
    fn after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, Batch)>, LedgerError>;
    /// Append `batch` as entry `base + 1` if the head is still `base`; `None` when another
    /// writer appended first.
    fn append(&self, base: u64, batch: &Batch) -> Result<Option<u64>, LedgerError>;
}

/// A ledger in memory, for tests of replication between stores in one process.
#[derive(Default)]
pub struct MemLedger {
    log: std::sync::Mutex<Vec<Batch>>,
}

impl Ledger for MemLedger {
    fn head(&self) -> Result<u64, LedgerError> {
        Ok(self.log.lock().map_err(|_| poisoned())?.len() as u64)
    }

    fn after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, Batch)>, LedgerError> {
        let log = self.log.lock().map_err(|_| poisoned())?;
        Ok((seq as usize..log.len())
            .take(limit)
            .map(|i| (i as u64 + 1, log[i].clone()))
            .collect())
    }

    fn append(&self, base: u64, batch: &Batch) -> Result<Option<u64>, LedgerError> {
        let mut log = self.log.lock().map_err(|_| poisoned())?;
        if log.len() as u64 != base {
            return Ok(None);
        }
        log.push(batch.clone());
        Ok(Some(log.len() as u64))
    }
}

fn poisoned() -> LedgerError {
    LedgerError::Unavailable("the in-memory ledger's lock is poisoned".into())
}

/// A store's place in a cluster.
pub struct Replica {
    pub ledger: Arc<dyn Ledger>,
    /// This node's name, written on its sandboxes.
    pub node: String,
}

/// The table a writing statement changes, lower-cased.
fn target_table(sql: &str) -> Option<String> {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .take(6)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let at = |i: usize| words.get(i).cloned();
    match words.first()?.as_str() {
        "insert" | "replace" => {
            let into = words.iter().position(|w| w == "into")?;
            at(into + 1)
        }
        "update" => match at(1)?.as_str() {
            "or" => at(3),
            t => Some(t.to_string()),
        },
        "delete" => at(2),
        _ => None,
    }
}

/// Is `sql` a write to a shared table? A write whose table cannot be told is treated as
/// shared, so nothing is silently left out of the cluster.
pub fn is_shared(sql: &str) -> bool {
    match target_table(sql) {
        Some(t) => SHARED.contains(&t.as_str()),
        None => true,
    }
}

/// One write transaction: reads through `Deref`, writes through [`Tx::execute`], which
/// records what a cluster must replay.
pub struct Tx<'c> {
    tx: rusqlite::Transaction<'c>,
    recording: bool,
    stmts: std::cell::RefCell<Vec<Stmt>>,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.tx
    }
}

/// Parameters of a statement: `params![…]` or an array of one type.
pub trait Args {
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R;
}

impl Args for &[&dyn ToSql] {
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        f(self)
    }
}

impl<T: ToSql, const N: usize> Args for [T; N] {
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        let v: Vec<&dyn ToSql> = self.iter().map(|x| x as &dyn ToSql).collect();
        f(&v)
    }
}

impl Tx<'_> {
    /// Execute a writing statement (recorded when it writes a shared table in a cluster).
    pub fn execute(&self, sql: &str, args: impl Args) -> rusqlite::Result<usize> {
        args.with(|p| self.record(sql, p))
    }

    fn record(&self, sql: &str, params: &[&dyn ToSql]) -> rusqlite::Result<usize> {
        let n = self.tx.execute(sql, params)?;
        if self.recording && is_shared(sql) {
            let params = params
                .iter()
                .map(|p| val_of(*p))
                .collect::<Result<_, _>>()?;
            self.stmts.borrow_mut().push(Stmt {
                sql: sql.to_string(),
                params,
            });
        }
        Ok(n)
    }
}

const APPLIED_SQL: &str = "SELECT v FROM cluster_state WHERE k = 'applied'";

fn applied(conn: &Connection) -> Result<u64, StoreError> {
    let v: Option<String> = conn.query_row(APPLIED_SQL, [], |r| r.get(0)).optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn set_applied(conn: &Connection, seq: u64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO cluster_state (k, v) VALUES ('applied', ?1) \
         ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        [seq.to_string()],
    )?;
    Ok(())
}

/// Apply entries in order; a statement that fails on this replica means it has diverged,
/// which stops it (nothing is applied past that entry).
fn apply(conn: &Connection, entries: &[(u64, Batch)], schema: usize) -> Result<(), StoreError> {
    for (seq, batch) in entries {
        if batch.schema > schema {
            return Err(StoreError::Replica(format!(
                "entry {seq} was written by node {} with schema {}, newer than this node's {}: \
                 upgrade this node",
                batch.node, batch.schema, schema
            )));
        }
        for st in &batch.stmts {
            let params: Vec<&dyn ToSql> = st.params.iter().map(|v| v as &dyn ToSql).collect();
            conn.execute(&st.sql, params.as_slice()).map_err(|e| {
                StoreError::Replica(format!(
                    "applying entry {seq} from node {}: {e} (in {})",
                    batch.node, st.sql
                ))
            })?;
        }
        set_applied(conn, *seq)?;
    }
    Ok(())
}

/// Entries fetched per round while catching up.
const PAGE: usize = 500;

/// Attempts of one write before it gives up to other writers.
const ATTEMPTS: usize = 50;

impl Store {
    /// Run `f` as one transaction, replicated when this store is a cluster's replica; `f` may
    /// run more than once (when another node wrote first), on the state as it then is.
    pub fn write<R>(
        &self,
        mut f: impl FnMut(&Tx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut db = self.db();
        let Some(rep) = &self.replica else {
            let tx = Tx {
                tx: db.transaction()?,
                recording: false,
                stmts: Default::default(),
            };
            let r = f(&tx)?;
            tx.tx.commit()?;
            return Ok(r);
        };
        for attempt in 0..ATTEMPTS {
            let tx = Tx {
                tx: db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
                recording: true,
                stmts: Default::default(),
            };
            let base = applied(&tx)?;
            let r = f(&tx)?;
            let stmts = tx.stmts.take();
            if stmts.is_empty() {
                tx.tx.commit()?;
                return Ok(r);
            }
            let batch = Batch {
                schema: super::schema_version(),
                node: rep.node.clone(),
                stmts,
            };
            if let Some(seq) = rep.ledger.append(base, &batch)? {
                set_applied(&tx, seq)?;
                tx.tx.commit()?;
                return Ok(r);
            }
            drop(tx);
            catch_up(&mut db, rep.ledger.as_ref())?;
            if attempt > 3 {
                std::thread::sleep(std::time::Duration::from_millis(attempt as u64));
            }
        }
        Err(StoreError::Replica(
            "too many concurrent writers; try again".into(),
        ))
    }

    /// Bring this replica up to the ledger's head (a no-op alone): what was written through
    /// any node before this call is readable after it.
    pub fn sync(&self) -> Result<(), StoreError> {
        let Some(rep) = &self.replica else {
            return Ok(());
        };
        let head = rep.ledger.head()?;
        let mut db = self.db();
        if applied(&db)? >= head {
            return Ok(());
        }
        catch_up(&mut db, rep.ledger.as_ref())
    }

    /// The last ledger entry this replica applied (0 alone).
    pub fn applied_seq(&self) -> u64 {
        if self.replica.is_none() {
            return 0;
        }
        applied(&self.db()).unwrap_or(0)
    }

    /// Catch up to at least entry `seq` (what the node that carried a request here had seen),
    /// without asking the ledger for its head.
    pub fn sync_to(&self, seq: u64) -> Result<(), StoreError> {
        let Some(rep) = &self.replica else {
            return Ok(());
        };
        let mut db = self.db();
        if applied(&db)? >= seq {
            return Ok(());
        }
        catch_up(&mut db, rep.ledger.as_ref())
    }

    /// This node's name in its cluster (empty alone).
    pub fn node(&self) -> &str {
        self.replica.as_ref().map_or("", |r| r.node.as_str())
    }

    /// Is this store a cluster's replica?
    pub fn clustered(&self) -> bool {
        self.replica.is_some()
    }
}

fn catch_up(conn: &mut Connection, ledger: &dyn Ledger) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let from = applied(&tx)?;
        let entries = ledger.after(from, PAGE)?;
        if entries.is_empty() {
            return Ok(());
        }
        apply(&tx, &entries, super::schema_version())?;
        tx.commit()?;
        if entries.len() < PAGE {
            return Ok(());
        }
    }
}

/// Join a cluster with the store at `conn`: the first node seeds an empty ledger with its
/// shared rows; a node whose replica is behind catches up; a state directory that holds
/// shared rows the ledger never had is refused (it belongs to another installation).
pub(super) fn join(conn: &mut Connection, rep: &Replica) -> Result<(), StoreError> {
    let head = rep.ledger.head()?;
    let joined = applied(conn)? > 0;
    if head == 0 {
        let stmts = seed(conn, &rep.node)?;
        if stmts.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            schema: super::schema_version(),
            node: rep.node.clone(),
            stmts,
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        match rep.ledger.append(0, &batch)? {
            Some(seq) => {
                set_applied(&tx, seq)?;
                tx.commit()?;
                return Ok(());
            }
            None => drop(tx),
        }
    } else if !joined && has_shared_rows(conn)? {
        return Err(StoreError::Replica(
            "this state directory holds tenants, keys or sandboxes of its own and the cluster \
             already has state: a node joins an existing cluster with an empty state directory"
                .into(),
        ));
    }
    catch_up(conn, rep.ledger.as_ref())
}

fn has_shared_rows(conn: &Connection) -> Result<bool, StoreError> {
    for t in SHARED {
        let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?;
        if n > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The statements that recreate this store's shared rows on an empty replica (in the order
/// of [`SHARED`], parents before children), with its sandboxes placed on `node`.
fn seed(conn: &Connection, node: &str) -> Result<Vec<Stmt>, StoreError> {
    conn.execute("UPDATE sandboxes SET node = ?1 WHERE node = ''", [node])?;
    let mut out = Vec::new();
    for t in SHARED {
        let mut st = conn.prepare(&format!("SELECT * FROM {t}"))?;
        let cols: Vec<String> = st.column_names().iter().map(|c| c.to_string()).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {t} ({}) VALUES ({})",
            cols.join(", "),
            marks.join(", ")
        );
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let params = (0..cols.len())
                .map(|i| val_of(&r.get::<_, Value>(i)?))
                .collect::<Result<Vec<_>, rusqlite::Error>>()?;
            out.push(Stmt {
                sql: sql.clone(),
                params,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "replica_tests.rs"]
mod tests;
