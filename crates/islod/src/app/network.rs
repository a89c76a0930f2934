//! Sandboxes and the gateway: a link per sandbox at creation, the resolver and CA put into
//! its root whenever it starts, the env its commands get, and telling the gateway when what
//! it caches changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use islo_runtime::{NetworkSpec, SandboxId};

use super::{App, AppError};
use crate::gateway::NetState;
use crate::store::SandboxRow;

impl App {
    /// The running gateway, when sandboxes get networks.
    pub fn net(&self) -> Option<&Arc<NetState>> {
        self.net.get()
    }

    /// Start the gateway (once, at start-up): its CA, listeners and nftables table.
    pub async fn start_network(
        &self,
        cfg: &crate::config::GatewayConfig,
        state_dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        let net = NetState::start(self.store.clone(), cfg, state_dir).await?;
        let activity = self.activity.clone();
        net.control
            .on_request(Arc::new(move |id: &str| activity.touch(id)));
        if self.net.set(net).is_err() {
            tracing::warn!("the gateway was started twice; the first one stays");
        }
        Ok(())
    }

    /// Stop the gateway (at shutdown): its table stays while networked sandboxes live.
    pub fn stop_network(&self) {
        if let Some(net) = self.net() {
            net.shutdown(&self.store);
        }
    }

    /// A link and a placeholder nonce for a new sandbox, or `None` without a gateway.
    pub(super) fn allocate_link(
        &self,
        id: &str,
    ) -> Result<Option<(NetworkSpec, String)>, AppError> {
        let Some(net) = self.net() else {
            return Ok(None);
        };
        let slot = self.store.allocate_net_slot(id, net.plan.slots())?;
        let nonce = hex::encode(rand::random::<[u8; 12]>());
        Ok(Some((net.plan.spec(slot), nonce)))
    }

    /// After a start: the resolver and the CA in the sandbox's root.
    pub(super) async fn prepare_link(
        &self,
        spec: &islo_runtime::SandboxSpec,
    ) -> Result<(), AppError> {
        let (Some(net), Some(link)) = (self.net().cloned(), spec.network.clone()) else {
            return Ok(());
        };
        let (id, ids) = (spec.id.clone(), islo_runtime::IdMap::of(spec.ids));
        self.network_changed(None);
        self.blocking(move |d| {
            let root = d
                .rootfs(&id)
                .ok_or_else(|| islo_runtime::DriverError::NotFound(id.clone()))?;
            net.prepare_root(root.path(), &link, ids).map_err(|e| {
                islo_runtime::DriverError::Host(format!("preparing the network of {id}: {e}"))
            })
        })
        .await
    }

    /// What the gateway caches about sandboxes or rules changed.
    pub fn network_changed(&self, gone: Option<&SandboxId>) {
        if let Some(net) = self.net() {
            net.changed(gone.map(|g| g.0.as_str()));
        }
    }

    /// Env for commands in `row`: the CA's location and secret placeholders.
    pub(super) fn gateway_env(&self, row: &SandboxRow) -> BTreeMap<String, String> {
        let Some(net) = self.net() else {
            return BTreeMap::new();
        };
        let Some(nonce) = row.stored.gateway_nonce.clone() else {
            return BTreeMap::new();
        };
        let secrets: Vec<(String, Vec<String>)> = self
            .store
            .secrets(&row.tenant_id)
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.name, s.env_vars))
            .collect();
        net.env(&nonce, &secrets)
    }
}
