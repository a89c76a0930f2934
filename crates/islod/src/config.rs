//! islod settings. Precedence: flag > environment (`ISLOD_*`) > file (YAML) > default.
//!
//! The file is `--config`, else `ISLOD_CONFIG`, else `/etc/islo/islod.yaml` (root) or
//! `~/.config/islo/islod.yaml`, when it exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Registry credentials in the file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

/// The file's shape; every field optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub listen: Option<String>,
    pub agent_path: Option<PathBuf>,
    pub runtime: Option<String>,
    pub pids_limit: Option<u32>,
    pub cgroup_favor_dynmods: Option<bool>,
    /// Raise the host's `fs.file-max` (so that each sandbox's memory bounds its open files)
    /// and `kernel.pid_max` to what systemd hosts run with (default true).
    pub fit_host_limits: Option<bool>,
    pub log_cap_bytes: Option<u64>,
    pub log_retention_days: Option<u32>,
    /// Sandboxes kept started ahead, of the kind last created (image and size, container
    /// class): a create of that kind takes one and names it (default 0, none; at most 32).
    pub warm_pool: Option<u32>,
    #[serde(default)]
    pub registry_mirrors: BTreeMap<String, String>,
    #[serde(default)]
    pub registry_credentials: BTreeMap<String, Credential>,
    /// Registries (`host[:port]`) on loopback or private addresses that image references may
    /// name (mirrors and registries with credentials may always be private).
    #[serde(default)]
    pub private_registries: Vec<String>,
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// What each tenant may hold at once.
    #[serde(default)]
    pub quotas: Quotas,
    /// What `github://owner/repo` sources are cloned from (default `https://github.com`).
    pub github_base_url: Option<String>,
    /// Agent profiles besides (or replacing, by name) the built-in ones.
    #[serde(default)]
    pub agents: Vec<islo_api::AgentProfile>,
    /// User namespaces and the host ids they map to.
    #[serde(default)]
    pub isolation: IsolationConfig,
    /// What share URLs start with, as others reach islod's TCP listener: `https://islo.example.com`
    /// (path-based, `…/s/TOKEN/`) or `https://{token}.share.example.com` (host-based; needs a
    /// wildcard DNS name). Default: `http://` plus `listen`.
    pub share_base_url: Option<String>,
    /// Largest body a webhook receiver takes (default 1 MiB).
    pub webhook_max_body_bytes: Option<usize>,
    /// Join a cluster of islod nodes coordinated through etcd (absent: a single host).
    pub cluster: Option<ClusterConfig>,
}

/// The `cluster:` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd's client URLs, one per member (`http://…` or `https://…` with `etcd_tls`).
    pub etcd: Vec<String>,
    /// This node's name, unique in the cluster (letters, digits, `-`; at most 63).
    pub node_name: String,
    /// Where the other nodes reach this one (`https://host:port`).
    pub advertise: String,
    /// Where the cluster's keys live in etcd (default `/islo/`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Client certificate, key and the CA of etcd's server certificates.
    pub etcd_tls: Option<TlsFiles>,
    /// This node's certificate and key, and the cluster's authority: node-to-node requests
    /// are mutual TLS, each side's certificate signed by `ca`.
    pub tls: TlsFiles,
    /// Where the node listener binds (default: `0.0.0.0` and the port of `advertise`).
    pub listen: Option<String>,
    /// The name node certificates are issued for, checked instead of the host of a node's
    /// `advertise` (one certificate for every node, as a Kubernetes Secret is).
    pub peer_name: Option<String>,
    /// Seconds a node stays registered without a heartbeat (default 10).
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_secs: u64,
    /// The OCI registry repository snapshots are copied to, so that any node can start
    /// sandboxes from them: `https://HOST[:PORT]/REPOSITORY` (`http://` on loopback only).
    /// Its credentials, if any, are in `registry_credentials` under `HOST[:PORT]`. Absent:
    /// sandboxes from a snapshot start on the node it was saved on.
    pub snapshot_registry: Option<String>,
    /// A CA certificate (PEM) the snapshot registry's certificate may be signed by, besides
    /// the system's.
    pub snapshot_registry_ca: Option<PathBuf>,
}

/// PEM files of one TLS identity and the authority it trusts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn default_prefix() -> String {
    "/islo/".into()
}

fn default_lease_ttl() -> u64 {
    10
}

impl ClusterConfig {
    /// Where the node listener binds.
    pub fn node_listen(&self) -> String {
        self.listen.clone().unwrap_or_else(|| {
            let port = self
                .advertise
                .trim_end_matches('/')
                .rsplit(':')
                .next()
                .unwrap_or("7443");
            format!("0.0.0.0:{port}")
        })
    }

    /// Refuse settings a cluster cannot run with, naming the setting.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("cluster.{m}")));
        let n = &self.node_name;
        if n.is_empty()
            || n.len() > 63
            || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || n.starts_with('-')
        {
            return bad(format!(
                "node_name {n:?}: use letters, digits and '-' (at most 63, not starting with '-')"
            ));
        }
        if self.etcd.is_empty() {
            return bad("etcd: list at least one etcd client URL".into());
        }
        for u in &self.etcd {
            let https = u.starts_with("https://");
            if !https && !u.starts_with("http://") {
                return bad(format!("etcd: {u:?} is not an http:// or https:// URL"));
            }
            if https && self.etcd_tls.is_none() {
                return bad(format!(
                    "etcd_tls: {u} is https, which needs ca, cert and key"
                ));
            }
        }
        if !self.prefix.starts_with('/') || !self.prefix.ends_with('/') {
            return bad(format!(
                "prefix {:?}: it starts and ends with '/'",
                self.prefix
            ));
        }
        let port = self
            .advertise
            .strip_prefix("https://")
            .and_then(|r| r.trim_end_matches('/').rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if port.is_none() {
            return bad(format!(
                "advertise {:?}: the https://HOST:PORT other nodes reach this one on, like \
                 https://10.0.0.2:7443",
                self.advertise
            ));
        }
        if self.lease_ttl_secs < 2 {
            return bad("lease_ttl_secs: at least 2".into());
        }
        if let Some(u) = &self.snapshot_registry
            && let Err(e) = crate::images::repo::parse_url(u)
        {
            return bad(format!("snapshot_registry: {e}"));
        }
        Ok(())
    }
}

/// The `isolation:` section: every sandbox in a user namespace of its own.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IsolationConfig {
    /// Run each sandbox in its own user namespace (default true). `false` runs them with the
    /// host's root as theirs: reduced isolation, which `islo status` reports on every one.
    pub userns: bool,
    /// First host id handed to sandboxes (a multiple of 65536; default 2^30, above what
    /// `useradd` gives `/etc/subuid`).
    pub id_base: u32,
    /// Host ids handed out in all, 65536 per sandbox (default 2^30: 16384 sandboxes).
    pub id_count: u32,
    /// Where installations on this host claim their ranges (default `/var/lib/islo-ids`).
    pub id_claims_dir: PathBuf,
    /// The isolation class of sandboxes whose create names none: `container` (the default)
    /// or `gvisor`; islod refuses to start when the host cannot run it.
    pub class: Option<String>,
    /// The runsc that runs `gvisor` sandboxes (default: `runsc` on `PATH`).
    pub runsc: Option<PathBuf>,
    /// gVisor's platform: `ptrace` (default; works anywhere), `kvm` (needs `/dev/kvm` that
    /// works, i.e. bare metal or nested virtualisation) or `systrap` (newer runsc).
    pub gvisor_platform: Option<String>,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        Self {
            userns: true,
            id_base: 1 << 30,
            id_count: 1 << 30,
            id_claims_dir: PathBuf::from("/var/lib/islo-ids"),
            class: None,
            runsc: None,
            gvisor_platform: None,
        }
    }
}

/// The `quotas:` section: what one tenant's sandboxes may hold in all (stopped ones too).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    pub sandboxes: u32,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            sandboxes: 100,
            vcpus: 200,
            memory_mb: 200 * 1024,
            disk_gb: 1000,
        }
    }
}

/// The `gateway:` section: sandbox networking and the egress gateway.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Give sandboxes a network through the gateway (default: yes with a real runtime; a
    /// sandbox without one has loopback only).
    pub enabled: Option<bool>,
    /// Addresses for sandbox links, `A.B.C.D/N` with N at most 24 (default `10.213.0.0/16`).
    pub subnet: Option<String>,
    /// Names the gateway resolves itself (trusted even when private), like curl's `--resolve`:
    /// `IP`, or `IP:PORT` to send every port of the name to that one.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// PEM files of extra certificate authorities trusted for upstreams.
    #[serde(default)]
    pub upstream_ca_files: Vec<PathBuf>,
    /// Let names resolve to private or loopback addresses (default: refused).
    #[serde(default)]
    pub allow_private_upstreams: bool,
}

/// Settings from flags (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub listen: Option<String>,
    pub agent_path: Option<PathBuf>,
    pub runtime: Option<String>,
}

/// Effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub listen: Option<String>,
    pub agent_path: PathBuf,
    /// `crun`, `runc`, a path, `fake`, or empty for automatic.
    pub runtime: Option<String>,
    pub pids_limit: u32,
    /// Sandboxes kept started ahead (`warm_pool`; 0: none).
    pub warm_pool: u32,
    /// Remount cgroup2 with `favordynmods` for faster sandbox starts (default true).
    pub cgroup_favor_dynmods: bool,
    pub fit_host_limits: bool,
    /// Bytes recorded per exec or terminal session (default 8 MiB).
    pub log_cap_bytes: u64,
    /// Days recorded sessions are kept after they end (default 30).
    pub log_retention_days: u32,
    pub registry_mirrors: BTreeMap<String, String>,
    pub registry_credentials: BTreeMap<String, Credential>,
    pub private_registries: Vec<String>,
    pub gateway: GatewayConfig,
    pub quotas: Quotas,
    pub github_base_url: String,
    pub agents: Vec<islo_api::AgentProfile>,
    pub isolation: IsolationConfig,
    /// What share URLs start with; `None` when islod has no TCP listener.
    pub share_base_url: Option<String>,
    pub webhook_max_body_bytes: usize,
    pub cluster: Option<ClusterConfig>,
}

/// The most sandboxes islod keeps started ahead.
const WARM_POOL_MAX: u32 = 32;

/// Errors loading settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The default state directory: `/var/lib/islo` for root, else `~/.local/share/islo`.
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/islo");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/islo")
}

fn default_file() -> PathBuf {
    if is_root() {
        return PathBuf::from("/etc/islo/islod.yaml");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".config/islo/islod.yaml")
}

fn default_agent() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("islo-agent")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from("/usr/local/lib/islo/islo-agent"),
    }
}

/// `http://` plus a listen address, with a wildcard address replaced by this host's name.
fn listen_url(listen: &str) -> String {
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "80"));
    let host = match host {
        "0.0.0.0" | "[::]" | "" => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into()),
        h => h.to_string(),
    };
    format!("http://{host}:{port}")
}

/// Parse a config file's text.
pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

impl Config {
    /// Load with `env` as the environment lookup (tests pass their own).
    pub fn load(o: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let explicit = o
            .config
            .clone()
            .or_else(|| env("ISLOD_CONFIG").map(PathBuf::from));
        let path = explicit.clone().unwrap_or_else(default_file);
        let file = match std::fs::read_to_string(&path) {
            Ok(t) => parse_file(&path, &t)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                FileConfig::default()
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let pick = |flag: Option<PathBuf>, var: &str, file: Option<PathBuf>| {
            flag.or_else(|| env(var).map(PathBuf::from)).or(file)
        };
        let state_dir = pick(o.state_dir.clone(), "ISLOD_STATE_DIR", file.state_dir)
            .unwrap_or_else(default_state_dir);
        let socket = pick(o.socket.clone(), "ISLOD_SOCKET", file.socket)
            .unwrap_or_else(|| state_dir.join("islod.sock"));
        let agent_path = pick(o.agent_path.clone(), "ISLO_AGENT_PATH", file.agent_path)
            .unwrap_or_else(default_agent);
        let pids_limit = env("ISLOD_PIDS_LIMIT")
            .and_then(|v| v.parse().ok())
            .or(file.pids_limit)
            .unwrap_or(1024);
        let warm_pool = env("ISLOD_WARM_POOL")
            .and_then(|v| v.parse().ok())
            .or(file.warm_pool)
            .unwrap_or(0);
        if warm_pool > WARM_POOL_MAX {
            return Err(ConfigError::Invalid(format!(
                "warm_pool must be at most {WARM_POOL_MAX}, got {warm_pool}"
            )));
        }
        let listen = o
            .listen
            .clone()
            .or_else(|| env("ISLOD_LISTEN"))
            .or(file.listen);
        let share_base_url = env("ISLOD_SHARE_BASE_URL")
            .or(file.share_base_url)
            .or_else(|| listen.as_deref().map(listen_url));
        Ok(Self {
            socket,
            listen,
            share_base_url,
            webhook_max_body_bytes: file.webhook_max_body_bytes.unwrap_or(1 << 20),
            cluster: file.cluster.map(|mut c| {
                // Kubernetes gives each pod its node's name and address this way.
                if let Some(n) = env("ISLOD_NODE_NAME") {
                    c.node_name = n;
                }
                if let Some(a) = env("ISLOD_ADVERTISE") {
                    c.advertise = a;
                }
                c
            }),
            agent_path,
            runtime: o
                .runtime
                .clone()
                .or_else(|| env("ISLOD_RUNTIME"))
                .or(file.runtime)
                .filter(|r| !r.is_empty()),
            pids_limit,
            warm_pool,
            cgroup_favor_dynmods: file.cgroup_favor_dynmods.unwrap_or(true),
            fit_host_limits: file.fit_host_limits.unwrap_or(true),
            log_cap_bytes: env("ISLOD_LOG_CAP_BYTES")
                .and_then(|v| v.parse().ok())
                .or(file.log_cap_bytes)
                .unwrap_or(8 << 20),
            log_retention_days: file.log_retention_days.unwrap_or(30),
            registry_mirrors: file.registry_mirrors,
            registry_credentials: file.registry_credentials,
            private_registries: file.private_registries,
            gateway: file.gateway,
            quotas: file.quotas,
            agents: file.agents,
            isolation: file.isolation,
            github_base_url: file
                .github_base_url
                .unwrap_or_else(|| "https://github.com".into()),
            state_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flag_env_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("islod.yaml");
        std::fs::write(&file, "state_dir: /from/file\nlisten: 127.0.0.1:1\nregistry_mirrors:\n  docker.io: http://127.0.0.1:5050\n").unwrap();
        let o = Overrides {
            config: Some(file.clone()),
            ..Default::default()
        };
        let none = |_: &str| None;
        let c = Config::load(&o, &none).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/from/file"));
        assert_eq!(c.socket, PathBuf::from("/from/file/islod.sock"));
        assert_eq!(c.registry_mirrors["docker.io"], "http://127.0.0.1:5050");
        let env = |k: &str| (k == "ISLOD_STATE_DIR").then(|| "/from/env".to_string());
        assert_eq!(
            Config::load(&o, &env).unwrap().state_dir,
            PathBuf::from("/from/env")
        );
        let o2 = Overrides {
            state_dir: Some("/from/flag".into()),
            ..o.clone()
        };
        assert_eq!(
            Config::load(&o2, &env).unwrap().state_dir,
            PathBuf::from("/from/flag")
        );
    }

    #[test]
    fn bad_cluster_settings_are_refused_naming_the_setting() {
        let good = "cluster:\n  etcd: [http://127.0.0.1:2379]\n  node_name: node-1\n  \
                    advertise: https://10.0.0.1:7443\n  tls: {ca: /c, cert: /n, key: /k}\n";
        let parse = |y: &str| parse_file(Path::new("x.yaml"), y).unwrap().cluster.unwrap();
        parse(good).check().unwrap();
        assert_eq!(parse(good).node_listen(), "0.0.0.0:7443");
        for (from, to, setting) in [
            ("node_name: node-1", "node_name: -bad", "node_name"),
            ("node_name: node-1", "node_name: a/b", "node_name"),
            ("etcd: [http://127.0.0.1:2379]", "etcd: []", "etcd"),
            (
                "etcd: [http://127.0.0.1:2379]",
                "etcd: [127.0.0.1:2379]",
                "etcd",
            ),
            (
                "etcd: [http://127.0.0.1:2379]",
                "etcd: [https://127.0.0.1:2379]",
                "etcd_tls",
            ),
            (
                "advertise: https://10.0.0.1:7443",
                "advertise: http://10.0.0.1:7443",
                "advertise",
            ),
            (
                "advertise: https://10.0.0.1:7443",
                "advertise: https://10.0.0.1",
                "advertise",
            ),
        ] {
            let e = parse(&good.replace(from, to))
                .check()
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("cluster.{setting}")), "{to}: {e}");
        }
        let e = parse(&format!("{good}  prefix: islo\n"))
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster.prefix"), "{e}");
        let e = parse(&format!("{good}  lease_ttl_secs: 1\n"))
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster.lease_ttl_secs"), "{e}");
        let e = parse(&format!(
            "{good}  snapshot_registry: http://10.0.0.5:5000/islo\n"
        ))
        .check()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cluster.snapshot_registry") && e.contains("plain HTTP"),
            "{e}"
        );
        parse(&format!(
            "{good}  snapshot_registry: https://reg.internal:5000/islo/snapshots\n"
        ))
        .check()
        .unwrap();
    }

    #[test]
    fn a_warm_pool_is_off_by_default_set_by_file_or_env_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("islod.yaml");
        let o = Overrides {
            config: Some(file.clone()),
            ..Default::default()
        };
        let load = |text: &str, env: &dyn Fn(&str) -> Option<String>| {
            std::fs::write(&file, text).unwrap();
            Config::load(&o, env)
        };
        let none = |_: &str| None;
        assert_eq!(load("state_dir: /a\n", &none).unwrap().warm_pool, 0);
        assert_eq!(load("warm_pool: 2\n", &none).unwrap().warm_pool, 2);
        let env = |k: &str| (k == "ISLOD_WARM_POOL").then(|| "0".to_string());
        assert_eq!(load("warm_pool: 2\n", &env).unwrap().warm_pool, 0);
        let err = load("warm_pool: 33\n", &none).unwrap_err().to_string();
        assert!(err.contains("warm_pool") && err.contains("32"), "{err}");
    }

    #[test]
    fn unknown_keys_name_the_problem() {
        let err = parse_file(Path::new("x.yaml"), "state_dir: /a\nbogus: 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.yaml") && err.contains("bogus"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let o = Overrides {
            config: Some(dir.path().join("missing.yaml")),
            ..Default::default()
        };
        assert!(
            Config::load(&o, &|_| None).is_err(),
            "an explicit missing file is an error"
        );
    }
}
