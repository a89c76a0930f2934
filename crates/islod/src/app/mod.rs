//! The sandbox lifecycle, owned by the server.
//!
//! Intent is persisted before the host is touched (a row in `starting`, `stopping`, …), the
//! back end is driven, then the observed result is recorded. [`App::reconcile`] finishes or
//! undoes whatever a crash interrupted, and re-adopts sandboxes that kept running.

mod agent_sessions;
mod audit;
mod create_opts;
mod environments;
mod error;
mod exec;
mod files;
mod gateway;
mod isolation;
mod keys;
mod lifecycle;
mod logs;
mod names;
mod network;
mod nodes;
mod pause;
mod progress;
mod quota;
mod reconcile;
mod sandboxes;
mod secrets;
mod sessions;
mod setup;
mod shares;
mod snapshot_archive;
mod snapshot_memory;
mod snapshot_travel;
mod snapshots;
mod sources;
mod stream;
mod system;
mod warm;
pub use warm::WARM_TENANT;
mod watch;
pub mod webhooks;

/// Conversions from records to API views.
pub mod sandboxes_view {
    pub use super::sandboxes::to_response;
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use islo_runtime::Driver;

use crate::images::ImageStore;
use crate::store::Store;

pub use audit::{Audit, Recording, shell_line};
pub use error::AppError;
pub use exec::TailBuf;
pub use isolation::{offered_class, offered_classes};
pub use progress::ended as creation_ended;
pub use sandboxes::list_cursor;
pub use sessions::validate_session_name;
pub use shares::{ShareHub, ShareRefusal, ShareTarget};
pub use snapshots::to_response as snapshot_view;
pub use stream::{
    EXIT_CANNOT_START, EXIT_LOST, ExecEvent, ExecInput, ExecInputs, ExecOutput, ExecStream,
    StreamError, StreamErrorKind,
};

/// The caller, as authentication established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
}

/// Settings of the lifecycle.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// pids cgroup limit of every sandbox (fork bombs stop here).
    pub pids_limit: u32,
    /// The default non-root user and its uid.
    pub user: String,
    pub uid: u32,
    pub state_dir: String,
    /// Bytes recorded per exec or terminal session before the log is cut.
    pub log_cap_bytes: u64,
    /// What `github://owner/repo` sources are cloned from (`https://github.com`).
    pub github_base_url: String,
    /// Coding agents (built-in and configured).
    pub agents: Vec<islo_api::AgentProfile>,
    /// What each tenant may hold.
    pub quotas: crate::config::Quotas,
    /// Host id ranges for sandboxes' user namespaces; `None`: sandboxes run without one
    /// (`isolation.userns: false`, reduced isolation).
    pub ids: Option<crate::ids::IdPool>,
    /// What share URLs start with (see [`ShareHub`]); `None`: no TCP listener, no shares.
    pub share_base_url: Option<String>,
    /// Largest body a webhook receiver takes (default 1 MiB); larger gets 413.
    pub webhook_max_body: usize,
    /// The isolation class of a sandbox whose create names none (`isolation.class`).
    pub default_isolation: islo_runtime::Isolation,
    /// Sandboxes kept started ahead (`warm_pool`; see [`warm`]).
    pub warm_pool: usize,
}

/// Everything the handlers need.
pub struct App {
    store: Arc<Store>,
    images: ImageStore,
    driver: Arc<dyn Driver>,
    pub settings: AppSettings,
    pub audit: Arc<Audit>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    net: std::sync::OnceLock<Arc<crate::gateway::NetState>>,
    shares: ShareHub,
    creations: progress::Creations,
    webhooks: webhooks::Worker,
    activity: Arc<lifecycle::Activity>,
    warm: warm::Warm,
    /// The cluster this node is one of (unset on a single host).
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// Set while the cluster's state cannot be read (see `sync_state`).
    cluster_degraded: std::sync::atomic::AtomicBool,
}

impl App {
    pub fn new(
        store: Arc<Store>,
        images: ImageStore,
        driver: Arc<dyn Driver>,
        settings: AppSettings,
    ) -> Self {
        let audit = Arc::new(Audit::new(store.clone(), settings.log_cap_bytes));
        let shares = ShareHub::new(settings.share_base_url.clone());
        Self {
            store,
            images,
            driver,
            settings,
            audit,
            locks: Mutex::new(HashMap::new()),
            net: std::sync::OnceLock::new(),
            shares,
            creations: progress::Creations::default(),
            webhooks: webhooks::Worker::default(),
            activity: Arc::default(),
            warm: warm::Warm::default(),
            cluster: std::sync::OnceLock::new(),
            cluster_degraded: Default::default(),
        }
    }

    /// Serialises lifecycle operations on one sandbox.
    fn op_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(id.to_string()).or_default().clone()
    }

    /// Run a blocking back-end call off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Driver) -> Result<T, islo_runtime::DriverError> + Send + 'static,
    ) -> Result<T, AppError> {
        let d = self.driver.clone();
        tokio::task::spawn_blocking(move || f(d.as_ref()))
            .await?
            .map_err(AppError::from)
    }
}
