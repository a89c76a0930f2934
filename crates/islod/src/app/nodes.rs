//! The nodes of islod's cluster, as the API shows them, and what this node publishes.

use std::sync::Arc;

use islo_api::{NodeHealth, NodeListResponse};

use super::{App, AppError, Tenant};
use crate::cluster::{Cluster, NodeRecord, membership};

/// What the host has: (vCPUs, memory MB, disk GB free under `dir`).
pub fn host_capacity(dir: &std::path::Path) -> (u64, u64, u64) {
    let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let memory_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024);
    let disk_gb = rustix::fs::statvfs(dir).map_or(0, |s| (s.f_bavail * s.f_frsize) >> 30);
    (vcpus, memory_mb, disk_gb)
}

impl App {
    /// Make this app a node of `cluster` (once, at start-up).
    pub fn join_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// What this node publishes about itself now.
    pub fn node_record(&self, id: &str, started_at: &str) -> NodeRecord {
        let (vcpus, memory_mb, disk_gb) =
            host_capacity(std::path::Path::new(&self.settings.state_dir));
        let (sandboxes, running) = self.store.node_counts().unwrap_or((0, 0));
        let (name, advertise) = self.cluster.get().map_or_else(Default::default, |c| {
            (c.config.node_name.clone(), c.config.advertise.clone())
        });
        NodeRecord {
            name,
            id: id.to_string(),
            advertise,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: started_at.to_string(),
            heartbeat_at: crate::store::now_rfc3339(),
            vcpus,
            memory_mb,
            disk_gb,
            sandboxes,
            running,
        }
    }

    /// Every node: those registered, and those with sandboxes or settings whose lease lapsed
    /// (`lost`). Blocking (etcd).
    pub fn nodes(&self) -> Result<NodeListResponse, AppError> {
        let Some(c) = self.cluster.get() else {
            let mut me = self.node_record("", "");
            me.name = hostname();
            return Ok(NodeListResponse {
                clustered: false,
                answered_by: me.name.clone(),
                nodes: vec![crate::cluster::node_response(me, NodeHealth::Ready)],
            });
        };
        crate::cluster::node_list(c, &self.store)
            .map_err(|e| AppError::ClusterUnavailable(format!("listing the cluster's nodes: {e}")))
    }

    /// Refuse a new sandbox on a cordoned or draining node. Blocking (etcd).
    pub fn check_accepting(&self) -> Result<(), AppError> {
        let Some(c) = self.cluster.get() else {
            return Ok(());
        };
        let a = membership::admin_of(&c.etcd, &c.config.prefix, &c.config.node_name)
            .map_err(|e| AppError::ClusterUnavailable(format!("reading this node's state: {e}")))?;
        if a.cordoned || a.draining {
            return Err(AppError::ClusterUnavailable(format!(
                "node {} is {} and takes no new sandboxes; create it through another node, or \
                 `islod nodes uncordon {}`",
                c.config.node_name,
                if a.draining { "draining" } else { "cordoned" },
                c.config.node_name
            )));
        }
        Ok(())
    }

    /// The cluster node this is (`None` alone).
    pub fn node_name(&self) -> Option<String> {
        self.cluster.get().map(|c| c.config.node_name.clone())
    }

    /// Bring this node's replica of the cluster's state up to date (a no-op alone); a
    /// failure leaves reads answering from what this node has. Blocking.
    ///
    /// Without a quorum etcd takes seconds to refuse a read, so after one failure the node
    /// stops asking (answering from its copy at once) until a probe finds etcd back.
    pub fn sync_state(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.cluster_degraded.load(Ordering::Relaxed) {
            return;
        }
        let Err(e) = self.store.sync() else {
            return;
        };
        tracing::warn!(error = %e, "cannot reach the cluster's state; answering from this node's copy");
        if self.cluster_degraded.swap(true, Ordering::Relaxed) {
            return;
        }
        let app = self.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if app.store.sync().is_ok() {
                    tracing::info!("the cluster's state is reachable again");
                    app.cluster_degraded.store(false, Ordering::Relaxed);
                    return;
                }
            }
        });
    }

    /// The node holding the tenant's sandbox `name_or_id` when that is another node than this
    /// one: its name, and where it is reached while it is registered. Blocking (etcd).
    pub fn owner_elsewhere(
        &self,
        t: &Tenant,
        name_or_id: &str,
    ) -> Result<Option<(String, Option<String>)>, AppError> {
        let Some(c) = self.cluster.get() else {
            return Ok(None);
        };
        let row = match self.store.sandbox_by_name(&t.id, name_or_id)? {
            Some(r) => r,
            None => match self.store.sandbox_by_id(&t.id, name_or_id)? {
                Some(r) => r,
                None => return Ok(None),
            },
        };
        if row.deleted_at.is_some() {
            return Ok(None);
        }
        elsewhere(c, row.node)
    }

    /// Where a new sandbox goes: `None` for this node, else the node's name and address.
    /// `hint` names a node (operators); otherwise the least loaded node (sandboxes per vCPU,
    /// this one on a tie) that is registered and neither cordoned nor draining. Blocking.
    pub fn place(
        &self,
        t: &Tenant,
        hint: Option<&str>,
        snapshot: Option<&str>,
    ) -> Result<Option<(String, String)>, AppError> {
        // A snapshot's files are on the node it was saved on: sandboxes made from it start
        // there, unless it was copied to the cluster's registry.
        if let Some(s) = snapshot
            && !self.snapshot_travels(t, s)?
            && let Some((node, address)) = self.snapshot_elsewhere(t, s)?
        {
            if hint.is_some_and(|h| h != node) {
                return Err(AppError::Conflict(format!(
                    "snapshot {s} is on node {node}: sandboxes made from it start there"
                )));
            }
            let address = address.ok_or_else(|| {
                AppError::ClusterUnavailable(format!(
                    "snapshot {s} is on node {node}, which is not answering"
                ))
            })?;
            return Ok(Some((node, address)));
        }
        let Some(c) = self.cluster.get() else {
            return match hint {
                Some(h) => Err(AppError::Validation(format!(
                    "node {h:?}: this islod is a single host, not a cluster's node"
                ))),
                None => Ok(None),
            };
        };
        let unavailable =
            |e: membership::MembershipError| AppError::ClusterUnavailable(format!("placing: {e}"));
        let prefix = &c.config.prefix;
        let live = membership::live_nodes(&c.etcd, prefix).map_err(unavailable)?;
        let admin = membership::admin_settings(&c.etcd, prefix).map_err(unavailable)?;
        let takes = |n: &NodeRecord| {
            !admin
                .iter()
                .any(|(name, a)| name == &n.name && (a.cordoned || a.draining))
        };
        let me = &c.config.node_name;
        let chosen = match hint {
            Some(h) => {
                let n = live.iter().find(|n| n.name == h).ok_or_else(|| {
                    AppError::ClusterUnavailable(format!(
                        "node {h} is not registered (unknown, or not answering): `islod nodes` \
                         lists the cluster's nodes"
                    ))
                })?;
                if !takes(n) {
                    return Err(AppError::ClusterUnavailable(format!(
                        "node {h} is cordoned or draining and takes no new sandboxes"
                    )));
                }
                n
            }
            None => {
                let mut best: Option<(f64, &NodeRecord)> = None;
                for n in live.iter().filter(|n| takes(n)) {
                    let load = self.store.counts_on(&n.name)?.0 as f64 / n.vcpus.max(1) as f64;
                    let better = best.is_none_or(|(l, b)| {
                        load < l || (load == l && n.name == *me && b.name != *me)
                    });
                    if better {
                        best = Some((load, n));
                    }
                }
                best.map(|(_, n)| n).ok_or_else(|| {
                    AppError::ClusterUnavailable(
                        "no node takes new sandboxes: every registered node is cordoned or \
                         draining (`islod nodes uncordon NAME`)"
                            .into(),
                    )
                })?
            }
        };
        Ok((chosen.name != *me).then(|| (chosen.name.clone(), chosen.advertise.clone())))
    }

    /// In a cluster: every few seconds, the sandboxes of a node whose lease lapsed are marked
    /// `failed` with the reason [`NODE_LOST`] (their files are on it); the node sets them
    /// right when it is back (`reconcile`).
    pub fn watch_nodes(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let c = self.cluster.get()?.clone();
        let app = self.clone();
        let period = std::time::Duration::from_secs((c.config.lease_ttl_secs / 2).max(1));
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let (a, c) = (app.clone(), c.clone());
                let registered = tokio::task::spawn_blocking(move || a.mark_lost_nodes(&c))
                    .await
                    .unwrap_or(false);
                // Only while registered: unregistered, the others would mark them lost again.
                if registered && let Err(e) = app.set_right_lost().await {
                    tracing::warn!(error = %e, "setting right sandboxes marked lost");
                }
                let a = app.clone();
                let _ = tokio::task::spawn_blocking(move || a.sweep_held()).await;
            }
        }))
    }

    /// Whether this node is registered (as far as etcd answers). The replica is brought up to
    /// date first: no request may have done it lately.
    fn mark_lost_nodes(&self, c: &Cluster) -> bool {
        if self.store.sync().is_err() {
            return false;
        }
        let Ok(live) = membership::live_nodes(&c.etcd, &c.config.prefix) else {
            return false; // etcd is out of reach: nothing can be told about the others
        };
        let registered = live.iter().any(|l| l.name == c.config.node_name);
        let Ok(nodes) = self.store.sandbox_nodes() else {
            return registered;
        };
        for n in nodes {
            if n.is_empty() || n == c.config.node_name || live.iter().any(|l| l.name == n) {
                continue;
            }
            let reason = lost_reason(&n);
            match self.store.fail_lost_node(&n, &reason) {
                Ok(0) => {}
                Ok(k) => {
                    tracing::warn!(node = %n, sandboxes = k, "node lost: its sandboxes are failed")
                }
                Err(e) => tracing::warn!(node = %n, error = %e, "marking a lost node's sandboxes"),
            }
        }
        registered
    }

    /// The node holding the files of the tenant's snapshot `name` when that is another node
    /// than this one (the node of the sandbox it was saved from): its name, and where it is
    /// reached while registered. Blocking (etcd).
    pub fn snapshot_elsewhere(
        &self,
        t: &Tenant,
        name: &str,
    ) -> Result<Option<(String, Option<String>)>, AppError> {
        let Some(c) = self.cluster.get() else {
            return Ok(None);
        };
        let Some(snap) = self.store.snapshot_by_name(&t.id, name)? else {
            return Ok(None);
        };
        let node = match &snap.sandbox_id {
            Some(id) => self.store.sandbox_by_id(&t.id, id)?.map(|r| r.node),
            None => None,
        };
        match node {
            Some(n) => elsewhere(c, n),
            None => Ok(None),
        }
    }

    /// Whether the tenant's snapshot `name` was copied to the cluster's registry, so that any
    /// node can start sandboxes from it.
    pub fn snapshot_travels(&self, t: &Tenant, name: &str) -> Result<bool, AppError> {
        let Some(snap) = self.store.snapshot_by_name(&t.id, name)? else {
            return Ok(false);
        };
        Ok(super::snapshots::Base::of(&snap).is_ok_and(|b| b.remote.is_some()))
    }

    /// The node holding the sandbox a live share `token` leads to, when that is another node:
    /// its name, its address while registered, and the sandbox's tenant. Blocking (etcd).
    pub fn share_elsewhere(
        &self,
        token: &str,
    ) -> Result<Option<(String, Option<String>, Tenant)>, AppError> {
        let Some(c) = self.cluster.get() else {
            return Ok(None);
        };
        let Some(share) = self.store.share_by_token(token)? else {
            return Ok(None);
        };
        let Some(row) = self.store.live_sandbox(&share.sandbox_id)? else {
            return Ok(None);
        };
        if row.node.is_empty() || row.node == c.config.node_name {
            return Ok(None);
        }
        let tenant = Tenant {
            name: self.store.tenant_name(&row.tenant_id)?.unwrap_or_default(),
            id: row.tenant_id,
        };
        Ok(elsewhere(c, row.node)?.map(|(node, address)| (node, address, tenant)))
    }

    /// This node's client identity toward the others.
    pub fn node_client_tls(&self) -> Option<crate::cluster::tls::PeerTls> {
        self.cluster.get().map(|c| crate::cluster::tls::PeerTls {
            client: c.tls.client.clone(),
            peer_name: c.config.peer_name.clone(),
        })
    }

    /// Catch up to at least ledger entry `seq`. Blocking.
    pub fn sync_state_to(&self, seq: u64) {
        if let Err(e) = self.store.sync_to(seq) {
            tracing::warn!(error = %e, "cannot reach the cluster's state; answering from this node's copy");
        }
    }

    /// The last ledger entry this node's copy of the shared state has.
    pub fn applied_seq(&self) -> u64 {
        self.store.applied_seq()
    }

    /// Is this a cluster's node?
    pub fn clustered(&self) -> bool {
        self.store.clustered()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// How a sandbox's reason starts when its node was lost.
pub const NODE_LOST: &str = "node lost";

fn lost_reason(node: &str) -> String {
    format!(
        "{NODE_LOST}: node {node} stopped answering and its files are on it; it is set right \
         when {node} is back"
    )
}

/// Was `row` failed because its node was lost?
pub fn failed_with_node(row: &crate::store::SandboxRow) -> bool {
    row.status == islo_api::SandboxStatus::Failed
        && row
            .status_reason
            .as_deref()
            .is_some_and(|r| r.starts_with(NODE_LOST))
}

/// `node` and its address while registered, when it is another node than this one (`None`
/// for this node, or for a record with no node: a single host's).
fn elsewhere(c: &Cluster, node: String) -> Result<Option<(String, Option<String>)>, AppError> {
    if node.is_empty() || node == c.config.node_name {
        return Ok(None);
    }
    let address = c
        .address_of(&node)
        .map_err(|e| AppError::ClusterUnavailable(format!("finding node {node}: {e}")))?;
    Ok(Some((node, address)))
}
