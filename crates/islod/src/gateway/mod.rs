//! islod's side of the egress gateway (the `islo-gateway` crate): sandbox link addresses
//! ([`NetPlan`]), the installation's CA, the nftables rules that send sandbox traffic to the
//! gateway ([`nft`]), what the gateway asks of islod ([`control`]), and what a networked
//! sandbox gets: a resolver, the CA in its trust store, the env vars that point at it, and
//! placeholders for secrets.

pub mod control;
pub mod log;
pub mod nft;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use islo_gateway::ca::Ca;
use islo_gateway::upstream::UpstreamConfig;
use islo_gateway::{Gateway, GatewayConfig};
use islo_runtime::NetworkSpec;

use crate::config::GatewayConfig as FileGateway;
use crate::store::{SecretMeta, Store};
pub use control::GatewayControl;

/// Where the sandbox's trust store is, and the env vars runtimes read it from.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The most of a sandbox's CA bundle islod reads (Debian's is about 200 KiB).
const MAX_CA_BUNDLE: u64 = 8 << 20;
const CA_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
];

/// What a provider's secret gets when its owner says nothing: the env vars its placeholder
/// is offered in, the API hosts it is injected for, and how. (Model providers' keys take
/// theirs from the agent profiles that use them.)
pub fn preset(secret: &str) -> SecretMeta {
    let own = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
    match secret {
        // GitHub takes a token as the password of any user, for git and the API alike.
        "github" => SecretMeta {
            env_vars: own(&["GITHUB_TOKEN", "GH_TOKEN"]),
            hosts: own(&["github.com", "api.github.com"]),
            auth_strategy: Some(islo_api::AuthStrategy {
                mode: islo_api::AuthMode::Basic,
                username: Some("x-access-token".into()),
                ..Default::default()
            }),
        },
        "slack" => SecretMeta {
            env_vars: own(&["SLACK_TOKEN"]),
            hosts: own(&["slack.com", "*.slack.com"]),
            auth_strategy: None,
        },
        _ => SecretMeta::default(),
    }
}

/// The start of a sandbox's placeholder tokens.
pub fn placeholder_prefix(nonce: &str) -> String {
    format!("islo_p_{nonce}_")
}

/// The name the gateway knows an environment's `gateway_injected` secret by:
/// `E<environment hex>-<KEY>`. Tenant secret names are lower case, so none looks like this.
pub fn environment_secret_name(env_id: &str, key: &str) -> String {
    format!("E{}-{key}", env_id.trim_start_matches("env_"))
}

/// The environment id and key an [`environment_secret_name`] stands for.
pub fn parse_environment_secret_name(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix('E')?;
    let (hex, key) = rest.split_once('-')?;
    (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !key.is_empty())
        .then(|| (format!("env_{hex}"), key.to_string()))
}

/// How sandbox links are addressed: slot N is the /30 at `base + 4N` (host end `+1`, sandbox
/// `+2`), its host interface `is<tag>s<N>`; `tag` (from the state dir) keeps installations on
/// one host apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPlan {
    base: u32,
    prefix: u8,
    tag: String,
}

impl NetPlan {
    pub fn new(subnet: &str, state_dir: &Path) -> Result<Self, String> {
        let bad = || {
            format!(
                "gateway.subnet {subnet:?} must look like 10.213.0.0/16 (a prefix of at most /24)"
            )
        };
        let (addr, len) = subnet.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if !(8..=24).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        use sha2::Digest;
        let digest = sha2::Sha256::digest(state_dir.as_os_str().as_encoded_bytes());
        Ok(Self {
            base: u32::from(addr) & mask,
            prefix,
            tag: hex::encode(&digest[..2]),
        })
    }

    pub fn slots(&self) -> u32 {
        (1u32 << (32 - self.prefix)) / 4
    }

    pub fn spec(&self, slot: u32) -> NetworkSpec {
        let at = self.base + 4 * slot;
        NetworkSpec {
            host_if: format!("{}{slot}", self.if_prefix()),
            host_addr: Ipv4Addr::from(at + 1),
            sandbox_addr: Ipv4Addr::from(at + 2),
            prefix_len: 30,
        }
    }

    /// The slot whose sandbox end is `ip`.
    pub fn slot_of(&self, ip: IpAddr) -> Option<u32> {
        let IpAddr::V4(v4) = ip else { return None };
        let off = u32::from(v4).checked_sub(self.base)?;
        (off % 4 == 2 && off / 4 < self.slots()).then_some(off / 4)
    }

    pub fn if_prefix(&self) -> String {
        format!("is{}s", self.tag)
    }

    pub fn table(&self) -> String {
        format!("islo_{}", self.tag)
    }
}

/// Where the gateway's listeners may sit: ports below 1024, which only root can bind. The
/// firewall keeps sending sandboxes' traffic to them while islod is down (so it fails
/// closed rather than around the gateway); a port any user could bind would let a local
/// process stand in for the gateway meanwhile.
const PRIVILEGED_PORTS: std::ops::Range<u16> = 600..1000;

/// The ports to try, in order: from a place fixed by the installation's tag (so a restart
/// usually finds the same one), around the range.
fn port_candidates(tag: &str) -> impl Iterator<Item = u16> {
    let span = PRIVILEGED_PORTS.end - PRIVILEGED_PORTS.start;
    let h = tag.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    let first = (h % u32::from(span)) as u16;
    (0..span).map(move |i| PRIVILEGED_PORTS.start + (first + i) % span)
}

/// Start the gateway on the first privileged port free for both TCP and UDP.
async fn start_privileged(
    plan: &NetPlan,
    upstream: UpstreamConfig,
    ca: Arc<Ca>,
    control: Arc<GatewayControl>,
) -> anyhow::Result<Gateway> {
    let floor = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if floor < PRIVILEGED_PORTS.end {
        tracing::warn!(
            ip_unprivileged_port_start = floor,
            "any user may bind the gateway's ports on this host; while islod is down a local \
             process could stand in for the gateway"
        );
    }
    for port in port_candidates(&plan.table()) {
        let addr: SocketAddr = (Ipv4Addr::UNSPECIFIED, port).into();
        let config = GatewayConfig {
            proxy_addr: addr,
            dns_addr: addr,
            upstream: upstream.clone(),
        };
        match Gateway::start(config, ca.clone(), control.clone()).await {
            Ok(gw) => return Ok(gw),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("starting the gateway")),
        }
    }
    anyhow::bail!(
        "starting the gateway: every port from {} to {} is taken",
        PRIVILEGED_PORTS.start,
        PRIVILEGED_PORTS.end - 1
    )
}

/// A running gateway and what sandboxes need of it.
pub struct NetState {
    pub plan: NetPlan,
    pub control: Arc<GatewayControl>,
    pub ca: Arc<Ca>,
    gateway: Mutex<Option<Gateway>>,
}

impl NetState {
    /// Load the CA, start the gateway, install the nftables rules.
    pub async fn start(
        store: Arc<Store>,
        cfg: &FileGateway,
        state_dir: &Path,
    ) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        let plan = NetPlan::new(cfg.subnet.as_deref().unwrap_or("10.213.0.0/16"), state_dir)
            .map_err(anyhow::Error::msg)?;
        let ca = Arc::new(
            Ca::load_or_create(
                &state_dir.join("gateway"),
                islo_runtime::host::write_durable,
            )
            .context("gateway CA")?,
        );
        let mut extra_roots = Vec::new();
        for f in &cfg.upstream_ca_files {
            let pem = std::fs::read_to_string(f)
                .with_context(|| format!("gateway.upstream_ca_files: {}", f.display()))?;
            let certs = islo_gateway::ca::pem_all(&pem);
            if certs.is_empty() {
                anyhow::bail!(
                    "gateway.upstream_ca_files: no PEM certificate in {}",
                    f.display()
                );
            }
            extra_roots.extend(certs);
        }
        let mut hosts = std::collections::HashMap::new();
        for (name, target) in &cfg.hosts {
            let t = target
                .parse::<islo_gateway::upstream::HostTarget>()
                .map_err(|e| anyhow::anyhow!("gateway.hosts.{name}: {e}"))?;
            hosts.insert(name.clone(), t);
        }
        let control = GatewayControl::new(store, plan.clone());
        let upstream = UpstreamConfig {
            hosts,
            extra_roots,
            allow_private: cfg.allow_private_upstreams,
        };
        let gw = start_privileged(&plan, upstream, ca.clone(), control.clone()).await?;
        nft::install(
            &plan.table(),
            &plan.if_prefix(),
            gw.proxy_addr.port(),
            gw.dns_addr.port(),
        )
        .map_err(|e| anyhow::anyhow!("installing the gateway's nftables rules: {e}"))?;
        tracing::info!(proxy = %gw.proxy_addr, dns = %gw.dns_addr, table = %plan.table(), "gateway ready");
        Ok(Arc::new(Self {
            plan,
            control,
            ca,
            gateway: Mutex::new(Some(gw)),
        }))
    }

    /// Something a client's answer depends on changed.
    pub fn changed(&self, gone_sandbox: Option<&str>) {
        self.control.invalidate();
        if let (Some(id), Ok(g)) = (gone_sandbox, self.gateway.lock())
            && let Some(g) = g.as_ref()
        {
            g.forget(id);
        }
    }

    /// Stop serving; remove the rules unless a sandbox still has a link (then they stay, so
    /// its traffic keeps going nowhere rather than around the gateway).
    pub fn shutdown(&self, store: &Store) {
        if let Ok(mut g) = self.gateway.lock() {
            g.take();
        }
        if !store.any_networked().unwrap_or(true)
            && let Err(e) = nft::remove(&self.plan.table())
        {
            tracing::warn!(error = %e, "could not remove the gateway's nftables rules");
        }
    }

    /// The env a networked sandbox's commands get: the trust store's location, and a
    /// placeholder for each secret that names env vars.
    pub fn env(&self, nonce: &str, secrets: &[(String, Vec<String>)]) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = CA_ENV
            .iter()
            .map(|k| ((*k).to_string(), CA_BUNDLE.to_string()))
            .collect();
        for (name, vars) in secrets {
            for v in vars {
                env.insert(v.clone(), format!("{}{name}", placeholder_prefix(nonce)));
            }
        }
        env
    }

    /// Put the resolver and the CA into a started sandbox's root.
    pub fn prepare_root(
        &self,
        root: &Path,
        spec: &NetworkSpec,
        ids: islo_runtime::IdMap,
    ) -> Result<(), crate::files::FileError> {
        let r = crate::files::SandboxRoot::open(root, 0, ids).map_err(|e| {
            crate::files::FileError::Invalid(format!("opening the sandbox root: {e}"))
        })?;
        let resolv = format!(
            "# islo: every query is answered by the gateway\nnameserver {}\n",
            spec.host_addr
        );
        r.replace("/etc/resolv.conf", 0o644, resolv.as_bytes())?;
        // The sandbox owns this file and may have made it huge; a bundle past the cap is
        // replaced by the CA alone, which is all the gateway's TLS needs.
        let mut bundle = match r.read_bounded(CA_BUNDLE, MAX_CA_BUNDLE) {
            Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
            Err(e @ crate::files::FileError::TooLarge { .. }) => {
                tracing::warn!(sandbox = %spec.host_if, "{e}; replacing it with islo's CA");
                String::new()
            }
            Err(_) => String::new(),
        };
        let ca = self.ca.cert_pem();
        if !bundle.contains(ca.trim()) {
            if !bundle.is_empty() && !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(ca);
            r.replace(CA_BUNDLE, 0o644, bundle.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_addresses() {
        let p = NetPlan::new("10.213.0.0/16", Path::new("/var/lib/islo")).unwrap();
        assert_eq!(p.slots(), 16384);
        let s = p.spec(3);
        assert_eq!(s.host_addr, Ipv4Addr::new(10, 213, 0, 13));
        assert_eq!(s.sandbox_addr, Ipv4Addr::new(10, 213, 0, 14));
        assert!(s.host_if.len() <= 15 && s.host_if.ends_with("s3"));
        assert_eq!(p.slot_of("10.213.0.14".parse().unwrap()), Some(3));
        assert_eq!(
            p.slot_of("10.213.0.13".parse().unwrap()),
            None,
            "host ends are not sandboxes"
        );
        assert_eq!(p.slot_of("10.214.0.2".parse().unwrap()), None);
        assert!(p.spec(16383).host_if.len() <= 15);
        let other = NetPlan::new("10.213.0.0/16", Path::new("/tmp/other")).unwrap();
        assert_ne!(p.if_prefix(), other.if_prefix());
        assert!(NetPlan::new("10.0.0.0/28", Path::new("/x")).is_err());
        assert!(NetPlan::new("nonsense", Path::new("/x")).is_err());
    }

    #[test]
    fn gateway_ports_are_privileged_stable_and_cover_the_range() {
        let a: Vec<u16> = port_candidates("islo_ab12").collect();
        assert_eq!(a, port_candidates("islo_ab12").collect::<Vec<_>>());
        assert!(a.iter().all(|p| PRIVILEGED_PORTS.contains(p)));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), PRIVILEGED_PORTS.len(), "every port once");
        assert_ne!(a[0], port_candidates("islo_cd34").next().unwrap());
    }
}
