//! The egress gateway: the only way out of a sandbox.
//!
//! islod redirects every TCP connection a sandbox opens to [`Gateway`]'s transparent listener
//! and every DNS query to its resolver ([`dns`]). The listener reads the original destination,
//! sniffs TLS (terminated with a per-host certificate from the installation's [`ca`]) or
//! plain HTTP (`CONNECT` included), decides each request against the sandbox's profile
//! ([`rules`]), limits its rate ([`limit`]), adds credentials ([`inject`]) and re-originates it
//! to the upstream, verifying the upstream's certificate ([`upstream`]). Anything else is
//! reset. Every decision is reported through [`Control::record`].
//!
//! What islod provides is behind [`Control`]: who a peer address is, its current policy, and
//! secrets. The crate has no store and no knowledge of sandboxes beyond that.

pub mod ca;
pub mod dns;
mod http;
pub mod inject;
mod io;
pub mod limit;
pub mod path;
mod proxy;
pub mod rules;
mod scrub;
mod sockopt;
mod splice;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

pub use proxy::{Gateway, GatewayConfig};
pub use rules::{Decision, Policy, SecretRoute};

/// A sandbox as the gateway sees it.
#[derive(Debug)]
pub struct Client {
    pub sandbox_id: String,
    pub tenant_id: String,
    /// The host end of its link (what DNS answers with).
    pub gateway_addr: IpAddr,
    /// Its rules, compiled.
    pub policy: Arc<Policy>,
    /// The prefix of its placeholder tokens (`islo_p_NONCE_`); a token names a secret after it.
    pub placeholder_prefix: String,
    /// Its tenant's secrets that go to hosts of their own.
    pub secret_routes: Vec<SecretRoute>,
}

/// What the gateway asks of its host (islod).
pub trait Control: Send + Sync + 'static {
    /// The sandbox whose address is `peer`, with its policy as of now.
    fn client(&self, peer: IpAddr) -> Option<Arc<Client>>;
    /// A tenant's secret by name.
    fn secret(&self, tenant_id: &str, name: &str) -> Option<String>;
    /// A decision was made (and, when allowed, the exchange finished).
    fn record(&self, event: Event);
}

/// One decision, for the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub sandbox_id: String,
    pub tenant_id: String,
    pub at: SystemTime,
    pub peer: SocketAddr,
    pub scheme: &'static str,
    pub host: String,
    pub method: String,
    /// Without its query (which may carry tokens).
    pub path: String,
    pub rule_id: Option<String>,
    pub action: islo_api::EventAction,
    /// HTTP status returned to the sandbox (0 for a reset flow).
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub latency_ms: f64,
    pub reason: String,
}
