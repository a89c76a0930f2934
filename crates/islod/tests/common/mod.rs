//! The server in-process over the fake back end, for the API tests.

#![allow(dead_code)] // each test binary uses its own part

pub use std::sync::Arc;

pub use islo_api::{CreateSandboxRequest, ErrorCode};
pub use islo_client::{Client, ClientError, Endpoint};
pub use islo_runtime::fake::FakeDriver;
pub use islod::app::{App, AppSettings, Tenant};
pub use islod::http::{HttpState, Transport, hash_secret, new_api_key, router};
pub use islod::images::{ImageSettings, ImageStore};
pub use islod::store::{ImageRow, Store};

pub const IMAGE: &str = "fake:latest";

pub struct Server {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub app: Arc<App>,
    pub tcp: String,
    pub unix: std::path::PathBuf,
}

pub fn app_over(dir: &std::path::Path, store: Arc<Store>) -> Arc<App> {
    app_warm(dir, store, 0)
}

/// The fake back end, keeping its sandboxes under `dir`/fake.
pub fn fake_driver(dir: &std::path::Path) -> Arc<FakeDriver> {
    std::fs::create_dir_all(dir.join("fake")).unwrap();
    Arc::new(FakeDriver::new(&dir.join("fake")))
}

/// [`app_over`], keeping `warm_pool` sandboxes started ahead.
pub fn app_warm(dir: &std::path::Path, store: Arc<Store>, warm_pool: usize) -> Arc<App> {
    app_on(dir, store, warm_pool, fake_driver(dir))
}

/// [`app_warm`] over the fake back end `driver`.
pub fn app_on(
    dir: &std::path::Path,
    store: Arc<Store>,
    warm_pool: usize,
    driver: Arc<FakeDriver>,
) -> Arc<App> {
    let images =
        ImageStore::new(&dir.join("images"), store.clone(), ImageSettings::default()).unwrap();
    let settings = AppSettings {
        pids_limit: 64,
        user: "islo".into(),
        uid: 1000,
        state_dir: dir.display().to_string(),
        log_cap_bytes: 1 << 20,
        github_base_url: "https://github.com".into(),
        agents: islod::agents::builtin(),
        quotas: islod::config::Quotas::default(),
        ids: Some(
            islod::ids::IdPool::new(
                &islod::config::IsolationConfig {
                    id_claims_dir: dir.join("id-claims"),
                    ..Default::default()
                },
                dir,
                &dir.join("etc"),
            )
            .unwrap(),
        ),
        share_base_url: Some("http://shares.test".into()),
        webhook_max_body: 1 << 20,
        default_isolation: islo_runtime::Isolation::Container,
        warm_pool,
    };
    Arc::new(App::new(store, images, driver, settings))
}

pub async fn serve(
    app: Arc<App>,
    local: Tenant,
    dir: &std::path::Path,
) -> (String, std::path::PathBuf) {
    let ssh = Arc::new(islod::ssh::LazyCa::new(dir));
    let state = |transport| HttpState {
        app: app.clone(),
        transport,
        local_tenant: local.clone(),
        ssh: ssh.clone(),
    };
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", tcp.local_addr().unwrap());
    let r = router(state(Transport::Tcp));
    tokio::spawn(async move { axum::serve(tcp, r).await });
    let sock = dir.join("islod.sock");
    let unix = tokio::net::UnixListener::bind(&sock).unwrap();
    let r = router(state(Transport::Unix));
    tokio::spawn(async move { axum::serve(unix, r).await });
    (addr, sock)
}

/// The store of a test server: the single host's, or with `ISLO_TEST_ETCD` (client URLs,
/// comma-separated) a cluster node's replica over that etcd, under a prefix of its own, so
/// every API test runs against both stores (`scripts/test.sh` does both).
fn test_store(dir: &std::path::Path) -> Arc<Store> {
    let path = dir.join("islod.db");
    let Ok(endpoints) = std::env::var("ISLO_TEST_ETCD") else {
        return Arc::new(Store::open(&path).unwrap());
    };
    use islod::cluster::{Etcd, EtcdLedger, EtcdSettings};
    let etcd = Etcd::new(EtcdSettings {
        endpoints: endpoints.split(',').map(str::to_string).collect(),
        tls: None,
        timeout: std::time::Duration::from_secs(10),
    })
    .unwrap();
    let prefix = format!("/islo-api-test/{}/", uuid::Uuid::now_v7());
    let replica = islod::store::Replica {
        ledger: Arc::new(EtcdLedger::new(Arc::new(etcd), &prefix)),
        node: "api-test".into(),
    };
    let store = Store::open_in(&path, Some(replica)).unwrap();
    assert!(store.clustered());
    Arc::new(store)
}

pub async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(dir.path());
    server_on(dir, store, 0).await
}

/// A test server over `store` in `dir`, keeping `warm_pool` sandboxes started ahead.
pub async fn server_on(dir: tempfile::TempDir, store: Arc<Store>, warm_pool: usize) -> Server {
    let driver = fake_driver(dir.path());
    server_with(dir, store, warm_pool, driver).await
}

/// [`server_on`] over the fake back end `driver`.
pub async fn server_with(
    dir: tempfile::TempDir,
    store: Arc<Store>,
    warm_pool: usize,
    driver: Arc<FakeDriver>,
) -> Server {
    // A cached image with no layers: the fake back end needs none.
    let row = ImageRow {
        reference: format!("docker.io/library/{IMAGE}"),
        digest: "sha256:00".into(),
        config: "{}".into(),
        layers: vec![],
    };
    store.put_image(&row).unwrap();
    let local = Tenant {
        id: store.ensure_tenant("local").unwrap(),
        name: "local".into(),
    };
    let app = app_on(dir.path(), store.clone(), warm_pool, driver);
    if warm_pool > 0 {
        app.keep_warm().await.unwrap();
    }
    let (tcp, unix) = serve(app.clone(), local, dir.path()).await;
    Server {
        dir,
        store,
        app,
        tcp,
        unix,
    }
}

impl Server {
    pub fn key(&self, tenant: &str) -> String {
        let k = new_api_key();
        let t = self.store.ensure_tenant(tenant).unwrap();
        self.store.insert_key(&t, "test", &hash_secret(&k)).unwrap();
        k
    }
    pub fn client(&self, tenant: &str) -> Client {
        Client::new(Endpoint::Http(self.tcp.clone()), Some(self.key(tenant))).unwrap()
    }
}

pub fn create(name: &str) -> CreateSandboxRequest {
    CreateSandboxRequest {
        name: Some(name.into()),
        image: Some(IMAGE.into()),
        ..Default::default()
    }
}

pub fn code(e: ClientError) -> ErrorCode {
    e.code().unwrap_or_else(|| panic!("not an API error: {e}"))
}
