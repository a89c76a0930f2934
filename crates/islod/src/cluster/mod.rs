//! islod as one node of a cluster coordinated through etcd.
//!
//! Without a `cluster:` section islod is a single host and nothing here runs. With one:
//! - the shared tables of the store replicate through [`EtcdLedger`] (see `store::replica`);
//! - the node registers under `<prefix>nodes/<name>` with a lease it keeps alive, publishing
//!   its capacity and load ([`membership`]); a second node with a live name is refused;
//! - operators cordon and drain nodes through `<prefix>node-admin/<name>`, which outlives
//!   the node's lease.
//!
//! Keys under the prefix (default `/islo/`): `head` and `log/<seq>` (the ledger), `nodes/`,
//! `node-admin/`.

pub mod etcd;
pub mod membership;
pub mod nodes;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use etcd::{Etcd, EtcdError, EtcdSettings};
pub use membership::{Membership, NodeAdmin, NodeRecord};
pub use nodes::{node_list, node_response};

use crate::config::ClusterConfig;
use crate::store::{Batch, Ledger, LedgerError};

/// The shared-state ledger kept in etcd: entry `n` at `<prefix>log/<n, 20 digits>`, the last
/// one's number at `<prefix>head`; an append is one transaction conditional on the head.
pub struct EtcdLedger {
    etcd: Arc<Etcd>,
    prefix: String,
}

impl EtcdLedger {
    pub fn new(etcd: Arc<Etcd>, prefix: &str) -> Self {
        Self {
            etcd,
            prefix: prefix.to_string(),
        }
    }

    fn head_key(&self) -> String {
        format!("{}head", self.prefix)
    }

    fn entry_key(&self, seq: u64) -> String {
        format!("{}log/{seq:020}", self.prefix)
    }
}

fn unavailable(e: EtcdError) -> LedgerError {
    LedgerError::Unavailable(e.to_string())
}

impl Ledger for EtcdLedger {
    fn head(&self) -> Result<u64, LedgerError> {
        let kv = self.etcd.get(&self.head_key()).map_err(unavailable)?;
        Ok(kv
            .and_then(|kv| String::from_utf8(kv.value).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    fn after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, Batch)>, LedgerError> {
        let from = self.entry_key(seq + 1);
        let kvs = self
            .etcd
            .range(&from, &format!("{}log/", self.prefix), limit)
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(kvs.len());
        for (i, kv) in kvs.into_iter().enumerate() {
            let n = seq + 1 + i as u64;
            if kv.key != self.entry_key(n) {
                return Err(LedgerError::Corrupt {
                    seq: n,
                    detail: format!("expected it, found {}", kv.key),
                });
            }
            let batch = serde_json::from_slice(&kv.value).map_err(|e| LedgerError::Corrupt {
                seq: n,
                detail: e.to_string(),
            })?;
            out.push((n, batch));
        }
        Ok(out)
    }

    fn append(&self, base: u64, batch: &Batch) -> Result<Option<u64>, LedgerError> {
        use etcd::{Cmp, Op};
        let head = self.head_key();
        let base_text = base.to_string();
        let when = if base == 0 {
            Cmp::Missing(&head)
        } else {
            Cmp::Value(&head, base_text.as_bytes())
        };
        let seq = base + 1;
        let (seq_text, entry) = (seq.to_string(), self.entry_key(seq));
        let body = serde_json::to_vec(batch).map_err(|e| LedgerError::Corrupt {
            seq,
            detail: e.to_string(),
        })?;
        let then = [
            Op::Put {
                key: &head,
                value: seq_text.as_bytes(),
                lease: 0,
            },
            Op::Put {
                key: &entry,
                value: &body,
                lease: 0,
            },
        ];
        let (won, _) = self.etcd.txn(&[when], &then, &[]).map_err(unavailable)?;
        Ok(won.then_some(seq))
    }
}

/// A node's cluster: the etcd client, its ledger, and its membership once registered.
pub struct Cluster {
    pub config: ClusterConfig,
    pub etcd: Arc<Etcd>,
    /// This node's identity toward the others.
    pub tls: tls::NodeTls,
    /// Where snapshots travel between nodes (`snapshot_registry`), if configured.
    pub snapshots: Option<Arc<crate::images::Repo>>,
    /// Where registered nodes were found lately, and when (see [`Cluster::address_of`]).
    addresses: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
}

/// How long a node's address is reused without asking etcd again.
const ADDRESS_TTL: Duration = Duration::from_secs(2);

/// TLS for etcd from the configured files.
fn etcd_tls(cfg: &ClusterConfig) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    let Some(t) = &cfg.etcd_tls else {
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("cluster.etcd_tls: reading {}", p.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(&read(&t.ca)?)? {
        roots.add(c).context("cluster.etcd_tls.ca")?;
    }
    let chain = rustls_pemfile_certs(&read(&t.cert)?)?;
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&read(&t.key)?)
        .context("cluster.etcd_tls.key: no private key in it")?;
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("cluster.etcd_tls: the certificate and key do not match")?;
    Ok(Some(Arc::new(cfg)))
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .context("reading PEM certificates")
}

/// The snapshot registry's repository, as configured.
fn snapshot_repo(
    config: &ClusterConfig,
    registry_auth: impl Fn(&str) -> oci_client::secrets::RegistryAuth,
) -> anyhow::Result<Option<Arc<crate::images::Repo>>> {
    let Some(url) = &config.snapshot_registry else {
        return Ok(None);
    };
    let ca =
        match &config.snapshot_registry_ca {
            Some(p) => Some(std::fs::read(p).with_context(|| {
                format!("cluster.snapshot_registry_ca: reading {}", p.display())
            })?),
            None => None,
        };
    let parsed = crate::images::repo::parse_url(url)
        .map_err(|e| anyhow::anyhow!("cluster.snapshot_registry: {e}"))?;
    let repo = crate::images::Repo::new(url, ca.as_deref(), registry_auth(&parsed.registry))
        .context("cluster.snapshot_registry")?;
    Ok(Some(Arc::new(repo)))
}

impl Cluster {
    /// Connect to etcd, waiting (and saying so) until it answers: a node does not serve
    /// before it can reach the cluster's state. `patience` bounds the wait (`None`: for ever).
    /// `registry_auth` gives the credentials of a registry (`HOST[:PORT]`).
    pub fn connect(
        config: &ClusterConfig,
        registry_auth: impl Fn(&str) -> oci_client::secrets::RegistryAuth,
        patience: Option<Duration>,
    ) -> anyhow::Result<Self> {
        config.check()?;
        let node_tls = tls::NodeTls::load(&config.tls)?;
        let snapshots = snapshot_repo(config, registry_auth)?;
        let etcd = Arc::new(Etcd::new(EtcdSettings {
            endpoints: config.etcd.clone(),
            tls: etcd_tls(config)?,
            timeout: Duration::from_secs(10),
        })?);
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            match etcd.get(&format!("{}head", config.prefix)) {
                Ok(_) => break,
                Err(e) => {
                    if patience.is_some_and(|p| started.elapsed() >= p) {
                        anyhow::bail!(
                            "cannot reach etcd at {}: {e}; check cluster.etcd in islod.yaml",
                            config.etcd.join(", ")
                        );
                    }
                    tracing::warn!(error = %e, endpoints = %config.etcd.join(", "),
                        "etcd is not answering; retrying before serving");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(Self {
            config: config.clone(),
            etcd,
            tls: node_tls,
            snapshots,
            addresses: Default::default(),
        })
    }

    /// Where node `name` is reached, while it is registered. Blocking (etcd, at most every
    /// [`ADDRESS_TTL`] per node: a node that died meanwhile is found unreachable instead).
    pub fn address_of(&self, name: &str) -> Result<Option<String>, EtcdError> {
        let mut seen = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((a, at)) = seen.get(name)
            && at.elapsed() < ADDRESS_TTL
        {
            return Ok(Some(a.clone()));
        }
        drop(seen);
        let key = format!("{}nodes/{name}", self.config.prefix);
        let address = self.etcd.get(&key)?.and_then(|kv| {
            serde_json::from_slice::<NodeRecord>(&kv.value)
                .ok()
                .map(|r| r.advertise)
        });
        seen = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        match &address {
            Some(a) => seen.insert(name.to_string(), (a.clone(), std::time::Instant::now())),
            None => seen.remove(name),
        };
        Ok(address)
    }

    /// Make the files `names` in `dir` the cluster's: the first node to get here publishes
    /// its own (under `<prefix>files/<dir's name>/`), every other node takes those in place of
    /// its own. For key material every node must hold alike (the SSH authorities). Blocking.
    pub fn share_files(&self, dir: &std::path::Path, names: &[&str]) -> anyhow::Result<()> {
        use etcd::{Cmp, Op};
        let group = dir.file_name().map_or("", |n| n.to_str().unwrap_or(""));
        for name in names {
            let path = dir.join(name);
            let mine =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let key = format!("{}files/{group}/{name}", self.config.prefix);
            let put = Op::Put {
                key: &key,
                value: &mine,
                lease: 0,
            };
            let (published, found) =
                self.etcd
                    .txn(&[Cmp::Missing(&key)], &[put], &[Op::Get(&key)])?;
            if published {
                continue;
            }
            let theirs = found
                .into_iter()
                .next()
                .map(|kv| kv.value)
                .unwrap_or_default();
            if !theirs.is_empty() && theirs != mine {
                islo_runtime::host::write_durable(&path, &theirs, 0o600)
                    .with_context(|| format!("writing {}", path.display()))?;
                tracing::info!(file = %path.display(), "took the cluster's copy");
            }
        }
        Ok(())
    }

    /// The ledger the store replicates through.
    pub fn ledger(&self) -> Arc<dyn Ledger> {
        Arc::new(EtcdLedger::new(self.etcd.clone(), &self.config.prefix))
    }
}
