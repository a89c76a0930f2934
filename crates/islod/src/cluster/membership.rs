//! A node's place in the cluster: registered under `<prefix>nodes/<name>` with a lease it
//! keeps alive, republishing its load as it goes; gone when the lease lapses (the node died or
//! lost etcd for longer than the TTL). Cordon and drain live in `<prefix>node-admin/<name>`,
//! without a lease, so they hold across restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::etcd::{Cmp, Etcd, EtcdError, Op};

/// What a node publishes about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    /// Stable across restarts (kept in the state directory): tells a restart of this node from
    /// a second node given the same name.
    pub id: String,
    /// Where other nodes reach this one.
    pub advertise: String,
    pub version: String,
    pub started_at: String,
    pub heartbeat_at: String,
    pub vcpus: u64,
    pub memory_mb: u64,
    pub disk_gb: u64,
    /// Sandboxes recorded on this node (any status but deleted), and those running.
    pub sandboxes: u64,
    pub running: u64,
}

/// What operators set on a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAdmin {
    /// No new sandboxes land on it.
    #[serde(default)]
    pub cordoned: bool,
    /// Cordoned, and on its way out: its sandboxes are to be moved or removed.
    #[serde(default)]
    pub draining: bool,
}

/// Errors of membership.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(
        "a node named {name} is already in the cluster (advertising {advertise}); give this \
         one another cluster.node_name"
    )]
    NameTaken { name: String, advertise: String },
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("a node record in etcd is malformed: {0}")]
    Malformed(String),
}

/// A registered node: its lease is kept alive by a thread until this is dropped, which gives
/// the lease up (the node leaves at once instead of after the TTL).
pub struct Membership {
    etcd: Arc<Etcd>,
    key: String,
    lease: Arc<std::sync::atomic::AtomicI64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn node_key(prefix: &str, name: &str) -> String {
    format!("{prefix}nodes/{name}")
}

fn admin_key(prefix: &str, name: &str) -> String {
    format!("{prefix}node-admin/{name}")
}

/// Put `record` under a fresh lease if the name is free or already this node's.
fn claim(etcd: &Etcd, key: &str, record: &NodeRecord, ttl: i64) -> Result<i64, MembershipError> {
    let body = serde_json::to_vec(record).map_err(|e| MembershipError::Malformed(e.to_string()))?;
    for _ in 0..3 {
        let lease = etcd.grant(ttl)?;
        let put = Op::Put {
            key,
            value: &body,
            lease,
        };
        let (won, found) = etcd.txn(&[Cmp::Missing(key)], &[put], &[Op::Get(key)])?;
        if won {
            return Ok(lease);
        }
        let _ = etcd.revoke(lease);
        let Some(kv) = found.into_iter().next() else {
            continue; // gone meanwhile: try again
        };
        let other: NodeRecord = serde_json::from_slice(&kv.value)
            .map_err(|e| MembershipError::Malformed(e.to_string()))?;
        if other.id != record.id {
            return Err(MembershipError::NameTaken {
                name: record.name.clone(),
                advertise: other.advertise,
            });
        }
        // This node restarted before its old lease ran out: take the record over.
        let lease = etcd.grant(ttl)?;
        let put = Op::Put {
            key,
            value: &body,
            lease,
        };
        let (won, _) = etcd.txn(&[Cmp::ModRevision(key, kv.mod_revision)], &[put], &[])?;
        if won {
            return Ok(lease);
        }
        let _ = etcd.revoke(lease);
    }
    Err(MembershipError::Malformed(format!(
        "{key} keeps changing under this node"
    )))
}

impl Membership {
    /// Register this node (refused when another node holds the name) and keep it registered,
    /// republishing `load()`'s record every third of `ttl`.
    pub fn join(
        etcd: Arc<Etcd>,
        prefix: &str,
        ttl: Duration,
        load: impl Fn() -> NodeRecord + Send + 'static,
    ) -> Result<Self, MembershipError> {
        let ttl_s = ttl.as_secs().max(2) as i64;
        let record = load();
        let key = node_key(prefix, &record.name);
        let lease = claim(&etcd, &key, &record, ttl_s)?;
        let lease = Arc::new(std::sync::atomic::AtomicI64::new(lease));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, k, l, s) = (etcd.clone(), key.clone(), lease.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("islod-membership".into())
            .spawn(move || heartbeat(&e, &k, &l, &s, ttl_s, load))
            .map_err(|e| MembershipError::Malformed(format!("starting the heartbeat: {e}")))?;
        Ok(Self {
            etcd,
            key,
            lease,
            stop,
            thread: Some(thread),
        })
    }
}

fn heartbeat(
    etcd: &Etcd,
    key: &str,
    lease: &std::sync::atomic::AtomicI64,
    stop: &AtomicBool,
    ttl: i64,
    load: impl Fn() -> NodeRecord,
) {
    let period = Duration::from_millis((ttl as u64 * 1000) / 3);
    let mut next = std::time::Instant::now() + period;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if std::time::Instant::now() < next {
            continue;
        }
        next = std::time::Instant::now() + period;
        let id = lease.load(Ordering::Relaxed);
        let record = load();
        let alive = etcd.keep_alive(id);
        let result = match alive {
            // Lapsed (0), or already gone from etcd (refused: "lease not found").
            Ok(0) | Err(EtcdError::Refused(_)) => {
                tracing::warn!(
                    "this node's lease lapsed (etcd was out of reach); registering again"
                );
                claim(etcd, key, &record, ttl).map(|l| lease.store(l, Ordering::Relaxed))
            }
            Ok(_) => serde_json::to_vec(&record)
                .map_err(|e| MembershipError::Malformed(e.to_string()))
                .and_then(|body| Ok(etcd.put(key, &body, id)?)),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "node heartbeat failed");
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.etcd.revoke(self.lease.load(Ordering::Relaxed));
        tracing::info!(key = %self.key, "left the cluster");
    }
}

/// The nodes whose leases are alive, by name.
pub fn live_nodes(etcd: &Etcd, prefix: &str) -> Result<Vec<NodeRecord>, MembershipError> {
    let p = format!("{prefix}nodes/");
    etcd.range(&p, &p, 0)?
        .into_iter()
        .map(|kv| {
            serde_json::from_slice(&kv.value).map_err(|e| MembershipError::Malformed(e.to_string()))
        })
        .collect()
}

/// What operators set on every node that has a setting, by name.
pub fn admin_settings(
    etcd: &Etcd,
    prefix: &str,
) -> Result<Vec<(String, NodeAdmin)>, MembershipError> {
    let p = format!("{prefix}node-admin/");
    etcd.range(&p, &p, 0)?
        .into_iter()
        .map(|kv| {
            let name = kv.key.trim_start_matches(&p).to_string();
            let a = serde_json::from_slice(&kv.value)
                .map_err(|e| MembershipError::Malformed(e.to_string()))?;
            Ok((name, a))
        })
        .collect()
}

/// Set what operators set on node `name`.
pub fn set_admin(
    etcd: &Etcd,
    prefix: &str,
    name: &str,
    a: NodeAdmin,
) -> Result<(), MembershipError> {
    let body = serde_json::to_vec(&a).map_err(|e| MembershipError::Malformed(e.to_string()))?;
    if a == NodeAdmin::default() {
        etcd.delete(&admin_key(prefix, name))?;
    } else {
        etcd.put(&admin_key(prefix, name), &body, 0)?;
    }
    Ok(())
}

/// What operators set on node `name`.
pub fn admin_of(etcd: &Etcd, prefix: &str, name: &str) -> Result<NodeAdmin, MembershipError> {
    match etcd.get(&admin_key(prefix, name))? {
        Some(kv) => {
            serde_json::from_slice(&kv.value).map_err(|e| MembershipError::Malformed(e.to_string()))
        }
        None => Ok(NodeAdmin::default()),
    }
}
