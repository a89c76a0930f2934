//! What the gateway asks islod: who is at an address (a live sandbox's link), its profile's
//! rules as of now, secrets, and where decisions go. Answers are cached per address until
//! anything they depend on changes ([`GatewayControl::invalidate`]: rule, profile and
//! sandbox changes call it), so a rule change reaches running sandboxes on their next request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use islo_gateway::{Client, Control, Event, Policy, SecretRoute};

use super::NetPlan;
use super::log::EventLog;

use crate::store::Store;

/// What [`GatewayControl::on_request`] calls.
pub type OnRequest = Arc<dyn Fn(&str) + Send + Sync>;

pub struct GatewayControl {
    store: Arc<Store>,
    plan: NetPlan,
    cache: RwLock<HashMap<IpAddr, Arc<Client>>>,
    events: EventLog,
    /// Told the sandbox of every request (its activity, for lifecycle policies).
    on_request: std::sync::OnceLock<OnRequest>,
}

impl GatewayControl {
    pub fn new(store: Arc<Store>, plan: NetPlan) -> Arc<Self> {
        let events = EventLog::start(store.clone());
        Arc::new(Self {
            store,
            plan,
            cache: RwLock::new(HashMap::new()),
            events,
            on_request: std::sync::OnceLock::new(),
        })
    }

    /// Call `f` with the sandbox id of every request from now on (set once).
    pub fn on_request(&self, f: OnRequest) {
        let _ = self.on_request.set(f);
    }

    /// Forget every cached answer.
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
    }

    fn load(&self, peer: IpAddr) -> Option<Client> {
        let slot = self.plan.slot_of(peer)?;
        let (sandbox_id, tenant_id, stored) = self.store.sandbox_on_slot(slot).ok()??;
        let nonce = stored.gateway_nonce?;
        let profile = match stored.gateway_profile_id.as_str() {
            "" => self
                .store
                .gateway_profiles(&tenant_id)
                .ok()?
                .into_iter()
                .find(|p| p.is_default)?,
            id => self.store.gateway_profile(&tenant_id, id).ok()??,
        };
        let mut profile = profile;
        if stored.internet_enabled == Some(false) {
            // Made with `internet_enabled: false`: off whatever the profile says.
            profile.internet_enabled = false;
        }
        let rules = self.store.gateway_rules(&profile.id).ok()?;
        let mut secret_routes: Vec<SecretRoute> = self
            .store
            .secrets(&tenant_id)
            .ok()?
            .into_iter()
            .filter(|s| !s.hosts.is_empty())
            .map(|s| SecretRoute::new(&s.name, &s.hosts, s.auth_strategy))
            .collect();
        if let Some(env_id) = &stored.environment_id {
            secret_routes.extend(self.environment_routes(&tenant_id, env_id));
        }
        Some(Client {
            secret_routes,
            sandbox_id,
            tenant_id,
            gateway_addr: IpAddr::V4(self.plan.spec(slot).host_addr),
            policy: Arc::new(Policy::compile(&profile, &rules)),
            placeholder_prefix: super::placeholder_prefix(&nonce),
        })
    }
}

impl GatewayControl {
    /// An environment's `gateway_injected` secrets, each toward its own rule.
    fn environment_routes(&self, tenant_id: &str, env_id: &str) -> Vec<SecretRoute> {
        let entries = self
            .store
            .tenant_environment_entries(tenant_id, env_id)
            .unwrap_or_default();
        entries
            .into_iter()
            .filter(|e| e.placement == islo_api::EntryPlacement::GatewayInjected)
            .filter_map(|e| {
                let rule = e.rule?;
                let name = super::environment_secret_name(env_id, &e.key);
                let methods = rule.methods.unwrap_or_default();
                Some(
                    SecretRoute::new(&name, &[rule.host_pattern], rule.auth_strategy)
                        .scoped(rule.path_pattern.as_deref(), &methods),
                )
            })
            .collect()
    }
}

impl Control for GatewayControl {
    fn client(&self, peer: IpAddr) -> Option<Arc<Client>> {
        if let Ok(c) = self.cache.read()
            && let Some(found) = c.get(&peer)
        {
            return Some(found.clone());
        }
        let client = Arc::new(self.load(peer)?);
        if let Ok(mut c) = self.cache.write() {
            c.insert(peer, client.clone());
        }
        Some(client)
    }

    fn secret(&self, tenant_id: &str, name: &str) -> Option<String> {
        if let Some((env_id, key)) = super::parse_environment_secret_name(name) {
            let entries = self
                .store
                .tenant_environment_entries(tenant_id, &env_id)
                .ok()?;
            return entries
                .into_iter()
                .find(|e| e.key == key && e.placement == islo_api::EntryPlacement::GatewayInjected)
                .and_then(|e| e.value);
        }
        self.store.secret_value(tenant_id, name).ok().flatten()
    }

    fn record(&self, event: Event) {
        if let Some(f) = self.on_request.get() {
            f(&event.sandbox_id);
        }
        self.events.record(event);
    }
}
