//! The cluster's nodes as the API and `islod nodes` show them.

use islo_api::{NodeHealth, NodeListResponse, NodeResponse};

use super::Cluster;
use super::membership::{self, MembershipError, NodeAdmin, NodeRecord};
use crate::store::Store;

/// Errors listing nodes.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn health(a: NodeAdmin) -> NodeHealth {
    if a.draining {
        NodeHealth::Draining
    } else if a.cordoned {
        NodeHealth::Cordoned
    } else {
        NodeHealth::Ready
    }
}

/// A registered node as the API shows it.
pub fn node_response(r: NodeRecord, health: NodeHealth) -> NodeResponse {
    let some = |s: String| (!s.is_empty()).then_some(s);
    NodeResponse {
        name: r.name,
        health,
        advertise: r.advertise,
        version: some(r.version),
        started_at: some(r.started_at),
        heartbeat_at: some(r.heartbeat_at),
        vcpus: r.vcpus,
        memory_mb: r.memory_mb,
        disk_gb: r.disk_gb,
        sandboxes: r.sandboxes,
        running: r.running,
    }
}

/// Every node: those registered (with what operators set on them), and those that hold
/// sandboxes or settings but whose lease lapsed (`lost`), by name.
pub fn node_list(c: &Cluster, store: &Store) -> Result<NodeListResponse, NodesError> {
    let prefix = &c.config.prefix;
    let live = membership::live_nodes(&c.etcd, prefix)?;
    let admin = membership::admin_settings(&c.etcd, prefix)?;
    let admin_of = |n: &str| {
        admin
            .iter()
            .find(|(name, _)| name == n)
            .map_or_else(NodeAdmin::default, |(_, a)| *a)
    };
    let mut nodes: Vec<NodeResponse> = live
        .into_iter()
        .map(|r| {
            let h = health(admin_of(&r.name));
            node_response(r, h)
        })
        .collect();
    let mut known = store.sandbox_nodes()?;
    known.extend(admin.iter().map(|(n, _)| n.clone()));
    known.sort();
    known.dedup();
    for name in known.into_iter().filter(|n| !n.is_empty()) {
        if nodes.iter().any(|n| n.name == name) {
            continue;
        }
        let (sandboxes, running) = store.counts_on(&name)?;
        let mut lost = node_response(
            NodeRecord {
                name,
                sandboxes,
                running,
                ..Default::default()
            },
            NodeHealth::Lost,
        );
        lost.heartbeat_at = None;
        nodes.push(lost);
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(NodeListResponse {
        clustered: true,
        answered_by: c.config.node_name.clone(),
        nodes,
    })
}
