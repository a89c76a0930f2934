//! Assembling and running the server: store, images, back end, reconciliation, listeners.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use islo_runtime::Driver;
use islo_runtime::host::RealHost;
use islo_runtime::oci::{OciConfig, OciDriver};

use crate::app::{App, AppSettings, Tenant};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::http::{self, HttpState, Transport};
use crate::images::{ImageSettings, ImageStore};
use crate::store::Store;

/// The tenant of local (unix socket) callers.
pub const LOCAL_TENANT: &str = "local";

/// Open the store under `state_dir`: this node's replica of `cluster`'s shared state when
/// given (caught up before it returns), else the single host's.
pub fn open_store(state_dir: &Path, cluster: Option<&Cluster>) -> anyhow::Result<Arc<Store>> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    set_mode(state_dir, 0o700)?;
    let replica = cluster.map(|c| crate::store::Replica {
        ledger: c.ledger(),
        node: c.config.node_name.clone(),
    });
    let store = Store::open_in(&state_dir.join("islod.db"), replica)
        .context("opening the state database")?;
    Ok(Arc::new(store))
}

/// Connect to the cluster islod.yaml names, if any, waiting for etcd (`patience`: how long;
/// `None`: until it answers, saying so meanwhile).
pub fn connect_cluster(
    cfg: &Config,
    patience: Option<std::time::Duration>,
) -> anyhow::Result<Option<Arc<Cluster>>> {
    let Some(c) = &cfg.cluster else {
        return Ok(None);
    };
    let auth = |registry: &str| match cfg.registry_credentials.get(registry) {
        Some(k) => oci_client::secrets::RegistryAuth::Basic(k.username.clone(), k.password.clone()),
        None => oci_client::secrets::RegistryAuth::Anonymous,
    };
    Ok(Some(Arc::new(Cluster::connect(c, auth, patience)?)))
}

/// This node's id, kept in the state directory: a restart is the same node, a copy of the
/// configuration on another host is not.
fn node_id(state_dir: &Path) -> anyhow::Result<String> {
    let path = state_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    let id = uuid::Uuid::now_v7().to_string();
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// Register this node in its cluster (refused when another node has its name) and keep it
/// registered while the returned value lives.
fn join_cluster(
    cfg: &Config,
    app: &Arc<App>,
    cluster: &Arc<Cluster>,
) -> anyhow::Result<crate::cluster::Membership> {
    app.join_cluster(cluster.clone());
    let id = node_id(&cfg.state_dir)?;
    let started = crate::store::now_rfc3339();
    let a = app.clone();
    let ttl = std::time::Duration::from_secs(cluster.config.lease_ttl_secs);
    let m = crate::cluster::Membership::join(
        cluster.etcd.clone(),
        &cluster.config.prefix,
        ttl,
        move || a.node_record(&id, &started),
    )?;
    tracing::info!(node = %cluster.config.node_name, "joined the cluster");
    Ok(m)
}

/// The exclusive hold one islod has on its state directory (`<state>/islod.lock`, holding its
/// pid), for as long as it runs: the kernel lets go when the process ends, however it ends.
pub struct StateLock {
    _file: std::fs::File,
}

/// Take the state directory, before anything else touches the host or the state; fails at
/// once, naming the holder, when another islod has it.
pub fn lock_state(state_dir: &Path) -> anyhow::Result<StateLock> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let path = state_dir.join("islod.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        if e == rustix::io::Errno::WOULDBLOCK {
            anyhow::bail!(
                "another islod (pid {}) is using the state directory {}; stop it first, or give \
                 this one its own --state-dir",
                pid.trim(),
                state_dir.display()
            );
        }
        return Err(std::io::Error::from(e)).with_context(|| format!("locking {}", path.display()));
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(StateLock { _file: file })
}

/// Before anything else: hold the state directory, copy the database aside, clear scratch.
fn take_state(state_dir: &Path) -> anyhow::Result<StateLock> {
    let lock = lock_state(state_dir)?;
    set_mode(state_dir, 0o700)?;
    backup_database(state_dir)?;
    clean_scratch(state_dir);
    Ok(lock)
}

/// Copy the database aside before migrations touch it (`islod.db.backup`, the copy from the
/// previous start replaced); a damaged database stops islod here, pointing at that copy.
fn backup_database(state_dir: &Path) -> anyhow::Result<()> {
    let db = state_dir.join("islod.db");
    if !db.exists() {
        return Ok(());
    }
    let copy = state_dir.join("islod.db.backup");
    Store::backup(&db, &copy).map_err(|e| {
        let kept = if copy.exists() {
            format!(
                "the copy made at the previous start is {}: with islod stopped, move the damaged \
                 file aside and put that copy in its place (changes since then are lost)",
                copy.display()
            )
        } else {
            "there is no earlier copy to restore".to_string()
        };
        anyhow::anyhow!("{e}\nislod will not start on it; {kept}")
    })
}

/// Remove scratch files an earlier islod left (a crash mid-pull, -save or -upload).
fn clean_scratch(state_dir: &Path) {
    let tmp = state_dir.join("images/tmp");
    let Ok(entries) = std::fs::read_dir(&tmp) else {
        return;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let p = e.path();
        let gone = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match gone {
            Ok(()) => removed += 1,
            Err(err) => tracing::warn!(path = %p.display(), error = %err, "removing scratch"),
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed scratch files left by an earlier islod");
    }
}

fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

/// `isolation.class` of islod.yaml, which the host must offer.
fn default_isolation(cfg: &Config, driver: &dyn Driver) -> anyhow::Result<islo_runtime::Isolation> {
    let Some(name) = cfg.isolation.class.as_deref() else {
        return Ok(islo_runtime::Isolation::Container);
    };
    crate::app::offered_class(&driver.isolation_classes(), name)
        .map_err(|e| anyhow::anyhow!("isolation.class: {e}"))
}

fn driver(cfg: &Config) -> anyhow::Result<Arc<dyn Driver>> {
    if cfg.runtime.as_deref() == Some("fake") {
        let dir = cfg.state_dir.join("fake");
        std::fs::create_dir_all(&dir)?;
        return Ok(Arc::new(islo_runtime::fake::FakeDriver::new(&dir)));
    }
    let oci = OciConfig {
        state_dir: cfg.state_dir.clone(),
        runtime_root: cfg.state_dir.join("runtime"),
        agent_binary: cfg.agent_path.clone(),
        runtime: cfg.runtime.clone().map(Into::into),
        favor_dynmods: cfg.cgroup_favor_dynmods,
        fit_host_limits: cfg.fit_host_limits,
        runsc: cfg.isolation.runsc.clone(),
        gvisor_platform: cfg.isolation.gvisor_platform.clone(),
    };
    Ok(Arc::new(OciDriver::new(oci, Arc::new(RealHost))?))
}

/// Build the application from settings (a node of `cluster` when given).
pub fn build(cfg: &Config, cluster: Option<&Cluster>) -> anyhow::Result<(Arc<App>, Tenant)> {
    let store = open_store(&cfg.state_dir, cluster)?;
    let local = Tenant {
        id: store.ensure_tenant(LOCAL_TENANT)?,
        name: LOCAL_TENANT.into(),
    };
    let settings = ImageSettings {
        mirrors: cfg.registry_mirrors.clone(),
        credentials: cfg
            .registry_credentials
            .iter()
            .map(|(k, c)| (k.clone(), (c.username.clone(), c.password.clone())))
            .collect(),
        private_registries: cfg.private_registries.clone(),
    };
    let images = ImageStore::new(&cfg.state_dir.join("images"), store.clone(), settings)?;
    let driver = driver(cfg)?;
    let app = App::new(
        store,
        images,
        driver.clone(),
        AppSettings {
            pids_limit: cfg.pids_limit,
            quotas: cfg.quotas,
            user: "islo".into(),
            uid: 1000,
            state_dir: cfg.state_dir.display().to_string(),
            log_cap_bytes: cfg.log_cap_bytes,
            github_base_url: cfg.github_base_url.clone(),
            agents: crate::agents::profiles(&cfg.agents).map_err(anyhow::Error::msg)?,
            ids: id_pool(cfg)?,
            share_base_url: cfg.share_base_url.clone(),
            webhook_max_body: cfg.webhook_max_body_bytes,
            default_isolation: default_isolation(cfg, driver.as_ref())?,
            warm_pool: cfg.warm_pool as usize,
        },
    );
    Ok((Arc::new(app), local))
}

/// The host ids sandboxes' user namespaces map to; none with `isolation.userns: false` or
/// the fake runtime (which runs no namespaces).
fn id_pool(cfg: &Config) -> anyhow::Result<Option<crate::ids::IdPool>> {
    if !cfg.isolation.userns || cfg.runtime.as_deref() == Some("fake") {
        if !cfg.isolation.userns {
            tracing::warn!(
                "isolation.userns is false: sandboxes run without user namespaces, their root is \
                 the host's root (reduced isolation)"
            );
        }
        return Ok(None);
    }
    let pool = crate::ids::IdPool::new(&cfg.isolation, &cfg.state_dir, Path::new("/etc"))
        .context("islod's config")?;
    Ok(Some(pool))
}

/// Bind the unix socket (mode 0600), refusing to steal it from a live server.
fn bind_socket(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another islod is already serving {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    set_mode(path, 0o600)?;
    Ok(l)
}

/// Serve until SIGINT or SIGTERM. Sandboxes keep running after it returns.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let _lock = take_state(&cfg.state_dir)?;
    let c = cfg.clone();
    let cluster = tokio::task::spawn_blocking(move || connect_cluster(&c, None)).await??;
    let (app, local) = build(&cfg, cluster.as_deref())?;
    // Every listener is bound before this node joins the cluster (its peers route to it from
    // then) and before the local socket (whose answer tells a client islod is up): a
    // connection to any of them waits in its backlog from here until islod serves, never
    // refused.
    let tcp = match &cfg.listen {
        Some(addr) => Some((
            addr,
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?,
        )),
        None => None,
    };
    let nodes = match &cluster {
        Some(c) => {
            let addr = c.config.node_listen();
            let l = crate::cluster::tls::NodeListener::bind(&addr, c.tls.server.clone()).await?;
            Some((addr, l))
        }
        None => None,
    };
    let _membership = match &cluster {
        Some(c) => {
            // One set of SSH authorities for the cluster: a certificate any node signed opens
            // a sandbox on any other, whose host key is the same everywhere.
            let dir = cfg.state_dir.join("ssh");
            crate::ssh::SshCa::open(&dir).context("the SSH authorities")?;
            let c2 = c.clone();
            tokio::task::spawn_blocking(move || {
                c2.share_files(&dir, &["user_ca", "host_ca", "host_key"])
            })
            .await??;
            Some(join_cluster(&cfg, &app, c)?)
        }
        None => None,
    };
    let networked = cfg
        .gateway
        .enabled
        .unwrap_or(cfg.runtime.as_deref() != Some("fake"));
    if networked {
        app.start_network(&cfg.gateway, &cfg.state_dir)
            .await
            .context("starting the egress gateway")?;
    }
    app.recover(cfg.log_retention_days)
        .await
        .context("recovering at start-up")?;
    let _watchdog = app.watch_agents();
    let _nodes = app.watch_nodes();
    let _lifecycles = app.enforce_lifecycles();
    let _warm = app
        .keep_warm()
        .await
        .context("the pool of sandboxes started ahead")?;
    app.start_webhook_worker();
    let unix = bind_socket(&cfg.socket)?;
    let pid_file = cfg.state_dir.join("islod.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).context("writing islod.pid")?;
    let ssh = Arc::new(crate::ssh::LazyCa::new(&cfg.state_dir));
    let state = |transport| HttpState {
        app: app.clone(),
        transport,
        local_tenant: local.clone(),
        ssh: ssh.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    let router = http::router(state(Transport::Unix));
    let rx = stop_rx.clone();
    tasks.spawn(async move {
        axum::serve(unix, router)
            .with_graceful_shutdown(wait(rx))
            .await
    });
    if let Some((addr, tcp)) = tcp {
        let router = http::router(state(Transport::Tcp));
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(tcp, service)
                .with_graceful_shutdown(wait(rx))
                .await
        });
        tracing::info!(%addr, "listening on TCP");
    }
    if let Some((addr, nodes)) = nodes {
        let router = http::router(state(Transport::Node));
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            axum::serve(nodes, router)
                .with_graceful_shutdown(wait(rx))
                .await
        });
        tracing::info!(%addr, "node listener (mutual TLS)");
    }
    tracing::info!(socket = %cfg.socket.display(), runtime = %app.runtime_name(), "islod ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        r = tasks.join_next() => { r.transpose()?.transpose()?; }
    }
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    app.stop_network();
    let _ = std::fs::remove_file(&cfg.socket);
    let _ = std::fs::remove_file(&pid_file);
    tracing::info!("islod stopped; sandboxes keep running");
    Ok(())
}
