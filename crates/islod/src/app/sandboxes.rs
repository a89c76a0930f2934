//! Create, read, list, stop, start again and delete sandboxes.

use std::collections::BTreeMap;
use std::sync::Arc;

use islo_api::limits::{
    DEFAULT_IMAGE, DEFAULT_WORKDIR, DISK_GB, LIST_LIMIT, MEMORY_MB, VCPUS, WORKDIR_LEN,
};
use islo_api::{
    CreateSandboxRequest, CreationPhase, ListSandboxesQuery, SandboxResponse, SandboxSpec,
    SandboxStatus,
};
use islo_runtime::{Limits, SandboxId};
use sha2::{Digest, Sha256};

use super::{App, AppError, Tenant, names};
use crate::store::{Op, SandboxFilter, SandboxRow, StoreError, StoredSpec, now_rfc3339};

/// A create request with defaults applied and ranges checked.
struct Checked {
    name: String,
    image: String,
    vcpus: u32,
    memory_mb: u32,
    disk_gb: u32,
    env: BTreeMap<String, String>,
    workdir: String,
    /// The snapshot it starts from: its id and base.
    snapshot: Option<(String, super::snapshots::Base)>,
    /// The gateway profile it is bound to.
    gateway_profile_id: String,
    /// The environment it gets variables and secrets from.
    environment_id: Option<String>,
    internet_enabled: Option<bool>,
    cache_key: Option<String>,
    lifecycle: Option<islo_api::LifecyclePolicy>,
    isolation: islo_runtime::Isolation,
}

fn in_range(what: &str, v: Option<u32>, (lo, hi, def): (u32, u32, u32)) -> Result<u32, AppError> {
    let v = v.unwrap_or(def);
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(AppError::Validation(format!(
            "{what} must be between {lo} and {hi}, got {v}"
        )))
    }
}

/// `/workspace`-relative or absolute, normalised, no `..`.
/// The `next_cursor` of a list page that ends at `end` (opaque to clients).
pub fn list_cursor(end: u64) -> String {
    format!("o{end}")
}

fn from_cursor(c: &str) -> Result<u32, AppError> {
    c.strip_prefix('o')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            AppError::Validation(format!(
                "cursor {c:?} is not one this server gave: list again without it"
            ))
        })
}

pub fn resolve_workdir(w: &str) -> Result<String, AppError> {
    if w.len() > WORKDIR_LEN || w.contains('\0') {
        return Err(AppError::Validation(format!(
            "workdir must be at most {WORKDIR_LEN} characters"
        )));
    }
    let base = if w.starts_with('/') {
        String::new()
    } else {
        DEFAULT_WORKDIR.to_string()
    };
    let joined = format!("{base}/{w}");
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                return Err(AppError::Validation(format!(
                    "workdir {w:?} must not contain '..'"
                )));
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn check(req: &CreateSandboxRequest) -> Result<Checked, AppError> {
    super::create_opts::check(req)?;
    let name = match &req.name {
        Some(n) => {
            names::validate(n)?;
            n.clone()
        }
        None => names::generate(),
    };
    let env = req.env.clone().unwrap_or_default();
    if let Some(k) = env
        .keys()
        .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err(AppError::Validation(format!(
            "invalid environment variable name {k:?}"
        )));
    }
    let image = req
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    if image.trim().is_empty() {
        return Err(AppError::Validation("image must not be empty".into()));
    }
    Ok(Checked {
        name,
        image,
        vcpus: in_range("vcpus", req.vcpus, VCPUS)?,
        memory_mb: in_range("memory_mb", req.memory_mb, MEMORY_MB)?,
        disk_gb: in_range("disk_gb", req.disk_gb, DISK_GB)?,
        env,
        workdir: resolve_workdir(req.workdir.as_deref().unwrap_or(DEFAULT_WORKDIR))?,
        snapshot: None,
        gateway_profile_id: String::new(),
        environment_id: None,
        internet_enabled: req.internet_enabled,
        cache_key: req.cache_key.clone(),
        lifecycle: req.lifecycle.clone().filter(|l| *l != Default::default()),
        isolation: islo_runtime::Isolation::Container,
    })
}

/// Start from a snapshot: its image, env (the request's keys win) and workdir (unless given).
fn from_snapshot(
    mut c: Checked,
    req: &CreateSandboxRequest,
    snap: &crate::store::SnapshotRow,
) -> Result<Checked, AppError> {
    if snap.status != islo_api::SnapshotStatus::Ready {
        return Err(AppError::Conflict(format!(
            "snapshot {} is {}; only ready snapshots can start sandboxes",
            snap.name, snap.status
        )));
    }
    if req.image.as_ref().is_some_and(|i| *i != snap.image) {
        return Err(AppError::Validation(format!(
            "snapshot {} holds a filesystem from {}; leave out the image",
            snap.name, snap.image
        )));
    }
    let base = super::snapshots::Base::of(snap)?;
    c.image = snap.image.clone();
    let mut env = base.env.clone();
    env.extend(c.env);
    c.env = env;
    if req.workdir.is_none() {
        c.workdir = base.workdir.clone();
    }
    c.snapshot = Some((snap.id.clone(), base));
    Ok(c)
}

fn request_hash(req: &CreateSandboxRequest) -> String {
    let mut r = req.clone();
    r.request_id = None;
    hex::encode(Sha256::digest(serde_json::to_vec(&r).unwrap_or_default()))
}

/// What a create asked for that its stored spec holds besides the runtime's: the gateway's
/// profile, the environment, internet access, the cache key and the lifecycle.
fn shape(c: &Checked, s: &mut StoredSpec) {
    s.gateway_profile_id = c.gateway_profile_id.clone();
    s.environment_id = c.environment_id.clone();
    s.internet_enabled = c.internet_enabled;
    s.cache_key = c.cache_key.clone();
    s.lifecycle = c.lifecycle.clone();
}

/// The API view of a record.
pub fn to_response(r: &SandboxRow) -> SandboxResponse {
    SandboxResponse {
        id: r.id.clone(),
        name: r.name.clone(),
        status: r.status,
        image: r.image.clone(),
        created_at: r.created_at.clone(),
        created_by: None,
        deleted_at: r.deleted_at.clone(),
        creation_phase: None,
        cache_key: r.stored.cache_key.clone(),
        spec: Some(SandboxSpec {
            vcpus: r.vcpus,
            memory_mb: r.memory_mb,
            disk_gb: r.disk_gb,
        }),
        workdir: Some(r.workdir.clone()),
        started_at: r.started_at.clone(),
        status_reason: r.status_reason.clone(),
        setup_steps: None,
        gateway_profile_id: Some(r.stored.gateway_profile_id.clone()).filter(|s| !s.is_empty()),
        isolation: r.stored.spec.as_ref().map(isolation),
        lifecycle: r.stored.lifecycle.clone(),
        node: Some(r.node.clone()).filter(|n| !n.is_empty()),
    }
}

/// What the API says of a sandbox's isolation.
fn isolation(spec: &islo_runtime::SandboxSpec) -> islo_api::Isolation {
    let ids = spec.ids;
    if spec.isolation == islo_runtime::Isolation::Gvisor {
        // runsc's user namespace: the Sentry runs as nobody; no host range is its.
        return islo_api::Isolation {
            class: spec.isolation.as_str().into(),
            user_namespace: true,
            host_ids: None,
            warning: None,
        };
    }
    islo_api::Isolation {
        class: spec.isolation.as_str().into(),
        user_namespace: ids.is_some(),
        host_ids: ids.map(|m| islo_api::HostIds {
            first: m.base,
            count: m.size,
        }),
        warning: ids.is_none().then(|| {
            "reduced isolation: it runs without a user namespace, so its root is root on the \
             host"
                .to_string()
        }),
    }
}

impl App {
    /// Create and start a sandbox; on any failure nothing of it remains.
    pub async fn create(
        self: &Arc<Self>,
        t: &Tenant,
        req: CreateSandboxRequest,
    ) -> Result<SandboxRow, AppError> {
        let mut c = check(&req)?;
        c.isolation = self.isolation_class(req.isolation.as_deref())?;
        if let Some(name) = &req.snapshot_name {
            c = from_snapshot(c, &req, &self.snapshot(t, name)?)?;
        }
        // Sources are cloned at creation; a snapshot already holds them.
        let clones = match (&req.sources, &c.snapshot) {
            (Some(s), None) => super::sources::parse(s, &self.settings.github_base_url)?,
            _ => Vec::new(),
        };
        if let (None, Some(first)) = (&req.workdir, clones.first()) {
            c.workdir = format!("{DEFAULT_WORKDIR}/{}", first.dir);
        }
        c.gateway_profile_id = match &req.gateway_profile {
            Some(which) => self.gateway_profile(t, which)?.id,
            None => self
                .gateway_profiles(t)?
                .into_iter()
                .find(|p| p.is_default)
                .map(|p| p.id)
                .unwrap_or_default(),
        };
        c.environment_id = self.environment_for_create(t, req.environment.as_deref())?;
        let hash = request_hash(&req);
        if let Some(rid) = &req.request_id
            && let Some(prev) = self.store.sandbox_by_request(&t.id, rid)?
        {
            return if prev.request_hash.as_deref() == Some(hash.as_str()) {
                Ok(prev)
            } else {
                Err(AppError::RequestIdReused(rid.clone()))
            };
        }
        let ask = super::quota::Ask {
            vcpus: c.vcpus,
            memory_mb: c.memory_mb,
            disk_gb: c.disk_gb,
        };
        if self.clustered() {
            let app = self.clone();
            tokio::task::spawn_blocking(move || app.check_accepting()).await??;
        }
        let admitted = self.admit(t, &ask).await?;
        let row = SandboxRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: t.id.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            status: SandboxStatus::Starting,
            status_reason: None,
            vcpus: c.vcpus,
            memory_mb: c.memory_mb,
            disk_gb: c.disk_gb,
            env: c.env.clone(),
            workdir: c.workdir.clone(),
            stored: StoredSpec::default(),
            request_id: req.request_id.clone(),
            request_hash: Some(hash),
            created_at: now_rfc3339(),
            started_at: None,
            deleted_at: None,
            node: String::new(),
        };
        let _busy = (!self.warm.holds(t)).then(|| self.warm.busy());
        let kind = self.poolable(t, &c);
        if let Some(k) = &kind
            && let Some(row) = self.claim_warm(k, &row, |s| shape(&c, s)).await?
        {
            drop(admitted);
            tracing::info!(sandbox = %row.name, id = %row.id, tenant = %t.name, "sandbox created (started ahead)");
            let scripts = req.setup_scripts.clone().unwrap_or_default();
            let keep = req.keep_failed.unwrap_or(false);
            return self.bootstrap(t, row, &clones, scripts, keep).await;
        }
        match self.store.insert_sandbox(&row) {
            Err(StoreError::NameTaken(n)) => return Err(AppError::AlreadyExists(n)),
            other => other?,
        }
        self.phase(&row.id, CreationPhase::ImagePull, Some(c.image.clone()));
        drop(admitted);
        let lock = self.op_lock(&row.id);
        let _g = lock.lock().await;
        crate::fault::point("create.recorded");
        match self.provision(&row, &c).await {
            Ok(spec) => {
                crate::fault::point("create.provisioned");
                let started = now_rfc3339();
                self.store
                    .set_status(&row.id, SandboxStatus::Running, None, Some(&started))?;
                tracing::info!(sandbox = %row.name, id = %row.id, tenant = %t.name, "sandbox created");
                let mut row = row;
                row.status = SandboxStatus::Running;
                row.started_at = Some(started);
                row.stored = spec;
                if kind.is_some() {
                    self.want_warm(super::warm::Kind::of(&row));
                }
                // Setup runs once, at creation; a snapshot already holds its results.
                let scripts = match &c.snapshot {
                    None => req.setup_scripts.clone().unwrap_or_default(),
                    Some(_) => Vec::new(),
                };
                let keep = req.keep_failed.unwrap_or(false);
                self.bootstrap(t, row, &clones, scripts, keep).await
            }
            Err(e) => {
                self.phase(&row.id, CreationPhase::Failed, Some(e.to_string()));
                self.store.remove_sandbox(&row.id)?;
                tracing::warn!(sandbox = %row.name, error = %e, "sandbox creation failed");
                Err(e)
            }
        }
    }

    /// After the start: clone the sources (a failure undoes the sandbox), then start setup.
    async fn bootstrap(
        self: &Arc<Self>,
        t: &Tenant,
        row: SandboxRow,
        clones: &[super::sources::Clone],
        scripts: Vec<islo_api::SetupScript>,
        keep_failed: bool,
    ) -> Result<SandboxRow, AppError> {
        if let Err(e) = self.clone_sources(t, &row, clones).await {
            self.phase(&row.id, CreationPhase::Failed, Some(e.to_string()));
            let id = SandboxId(row.id.clone());
            if keep_failed {
                // Kept for inspection: its files stay, its processes stop.
                self.clean_up("stopping", id, |d, id| d.stop(id)).await;
                let reason = e.to_string();
                self.store
                    .set_status(&row.id, SandboxStatus::Failed, Some(&reason), None)?;
                tracing::warn!(sandbox = %row.name, error = %e, "sandbox kept as failed");
                return Err(e);
            }
            self.undo_create(&row.id).await?;
            tracing::warn!(sandbox = %row.name, error = %e, "sandbox creation failed");
            return Err(e);
        }
        if scripts.is_empty() {
            self.phase(&row.id, CreationPhase::Ready, None);
        } else {
            self.start_setup(t, &row, scripts)?;
        }
        Ok(row)
    }

    /// Pull the image and start the sandbox; returns the stored runtime spec.
    async fn provision(&self, row: &SandboxRow, c: &Checked) -> Result<StoredSpec, AppError> {
        let base = match &c.snapshot {
            Some((id, base)) => Some((id, self.snapshot_for(&row.id, id, base).await?)),
            None => None,
        };
        let (layers, image_env, digest, snapshot_id) = match &base {
            Some((id, base)) => (
                base.layers.clone(),
                base.image_env.clone(),
                None,
                Some(id.to_string()),
            ),
            None => {
                let (image, _) = self.pull_for(&row.id, &c.image).await?;
                (image.layers, image.run.env, Some(image.digest), None)
            }
        };
        let mut link = self.allocate_link(&row.id)?;
        let ids = match c.isolation {
            islo_runtime::Isolation::Gvisor => None,
            islo_runtime::Isolation::Container => self.allocate_ids(&row.id)?,
        };
        let memory = base.as_ref().and_then(|(_, b)| b.memory.clone());
        if let (Some(l), Some(nonce)) = (
            link.as_mut(),
            c.snapshot
                .as_ref()
                .and_then(|(_, b)| b.gateway_nonce.clone()),
        ) {
            // The forked processes hold the source's placeholders.
            l.1 = nonce;
        }
        let spec = islo_runtime::SandboxSpec {
            id: SandboxId(row.id.clone()),
            hostname: row.name.clone(),
            layers,
            limits: Limits {
                vcpus: c.vcpus,
                memory_bytes: u64::from(c.memory_mb) << 20,
                disk_bytes: u64::from(c.disk_gb) << 30,
                pids: self.settings.pids_limit,
            },
            user: self.settings.user.clone(),
            uid: self.settings.uid,
            network: link.as_ref().map(|(n, _)| n.clone()),
            ids,
            isolation: c.isolation,
            ahead: self.warm.holds_id(&row.tenant_id),
        };
        let mut stored = StoredSpec {
            spec: Some(spec.clone()),
            image_env,
            image_digest: digest,
            snapshot_id,
            gateway_nonce: link.map(|(_, nonce)| nonce),
            ..StoredSpec::default()
        };
        shape(c, &mut stored);
        self.store.set_runtime_spec(&row.id, &stored)?;
        let created = spec.clone();
        self.phase(&row.id, CreationPhase::Disk, None);
        let mut made = match memory {
            Some(ck) => self.blocking(move |d| d.create_from(&created, &ck)).await,
            None => self.blocking(move |d| d.create(&created)).await,
        };
        if made.is_ok() && spec.network.is_some() {
            self.phase(&row.id, CreationPhase::Network, None);
        }
        if made.is_ok()
            && let Err(e) = self.prepare_link(&spec).await
        {
            self.clean_up("removing", spec.id.clone(), |d, id| d.destroy(id))
                .await;
            made = Err(e);
        }
        if made.is_err() {
            self.release_ids(&row.id);
        }
        made.map(|()| stored)
    }

    /// What a warm sandbox must be to stand in for this create (`None`: none may: the pool is
    /// off, the create is the pool's own, starts from a snapshot or in another class).
    fn poolable(&self, t: &Tenant, c: &Checked) -> Option<super::warm::Kind> {
        let plain = c.snapshot.is_none() && c.isolation == islo_runtime::Isolation::Container;
        (self.settings.warm_pool > 0 && plain && !self.warm.holds(t)).then(|| super::warm::Kind {
            image: c.image.clone(),
            digest: self.images.cached_digest(&c.image),
            vcpus: c.vcpus,
            memory_mb: c.memory_mb,
            disk_gb: c.disk_gb,
        })
    }

    /// Undo a running sandbox whose create cannot finish: its processes and files, its ids,
    /// its record (it never existed for its user) and the gateway's view of its address.
    pub(super) async fn undo_create(&self, id: &str) -> Result<(), AppError> {
        let gone = SandboxId(id.to_string());
        self.clean_up("removing", gone.clone(), |d, id| d.destroy(id))
            .await;
        self.release_ids(id);
        self.store.remove_sandbox(id)?;
        self.network_changed(Some(&gone));
        Ok(())
    }

    /// Clean up after a failed create: what the cleanup itself fails to do is logged (it
    /// stays on the host until an `rm` of the same name or a restart of islod), never hidden.
    async fn clean_up(
        &self,
        what: &'static str,
        id: SandboxId,
        f: fn(&dyn islo_runtime::Driver, &SandboxId) -> Result<(), islo_runtime::DriverError>,
    ) {
        let shown = id.clone();
        if let Err(e) = self.blocking(move |d| f(d, &id)).await {
            tracing::error!(sandbox = %shown, error = %e, "{what} a sandbox whose creation failed");
        }
    }

    /// A live sandbox by name.
    pub fn get(&self, t: &Tenant, name: &str) -> Result<SandboxRow, AppError> {
        self.store
            .sandbox_by_name(&t.id, name)?
            .ok_or_else(|| AppError::SandboxNotFound(name.to_string()))
    }

    /// A sandbox by id, deleted ones included.
    pub fn get_by_id(&self, t: &Tenant, id: &str) -> Result<SandboxRow, AppError> {
        self.store
            .sandbox_by_id(&t.id, id)?
            .ok_or_else(|| AppError::SandboxNotFound(id.to_string()))
    }

    /// A page of the tenant's sandboxes (and their count), as `GET /sandboxes` asks.
    pub fn list(
        &self,
        t: &Tenant,
        q: &ListSandboxesQuery,
    ) -> Result<(Vec<SandboxRow>, u64, u32, u32), AppError> {
        let limit = q.limit.unwrap_or(LIST_LIMIT.2);
        if !(LIST_LIMIT.0..=LIST_LIMIT.1).contains(&limit) {
            return Err(AppError::Validation(format!(
                "limit must be between {} and {}",
                LIST_LIMIT.0, LIST_LIMIT.1
            )));
        }
        let offset = match &q.cursor {
            Some(c) => from_cursor(c)?,
            None => q.offset.unwrap_or(0),
        };
        let mine = |c: &str| c == "me" || c == t.name || c == t.id;
        if q.created_by.as_deref().is_some_and(|c| !mine(c)) {
            // Every sandbox this caller sees was made by its own tenant.
            return Ok((Vec::new(), 0, limit, offset));
        }
        let f = SandboxFilter {
            name_prefix: q.name_prefix.clone(),
            statuses: q.status.clone(),
            search: q
                .q
                .clone()
                .or_else(|| q.search.clone())
                .filter(|s| !s.is_empty()),
            limit,
            offset,
        };
        let (items, total) = self.store.list_sandboxes(&t.id, &f)?;
        Ok((items, total, limit, offset))
    }

    /// Stop: kill every process, keep the files.
    pub async fn stop(&self, t: &Tenant, name: &str) -> Result<SandboxRow, AppError> {
        let row = self.get(t, name)?;
        let lock = self.op_lock(&row.id);
        let _g = lock.lock().await;
        let row = self.get(t, name)?;
        match row.status {
            SandboxStatus::Stopped => return Ok(row),
            SandboxStatus::Running
            | SandboxStatus::Failed
            | SandboxStatus::Stopping
            | SandboxStatus::Paused => {}
            s => {
                return Err(AppError::InvalidState {
                    name: row.name,
                    status: s,
                    hint: "wait for it to finish starting",
                });
            }
        }
        if row.status == SandboxStatus::Running && self.agent_answers(&row).await {
            self.record_sessions_before_stop(&row).await;
            self.sync_agent_sessions(&row).await;
        }
        self.store
            .begin_op(&row.id, Op::Stop, SandboxStatus::Stopping)?;
        crate::fault::point("stop.recorded");
        let id = SandboxId(row.id.clone());
        if let Err(e) = self.blocking(move |d| d.stop(&id)).await {
            self.store
                .set_status(&row.id, SandboxStatus::Failed, Some(&e.to_string()), None)?;
            return Err(e);
        }
        self.store
            .set_status(&row.id, SandboxStatus::Stopped, None, None)?;
        tracing::info!(sandbox = %row.name, "sandbox stopped");
        self.get(t, name)
    }

    /// Start a stopped sandbox again with its files intact, or bring a paused one back with
    /// its processes (`POST …/resume`).
    pub async fn resume(&self, t: &Tenant, name: &str) -> Result<SandboxRow, AppError> {
        let row = self.get(t, name)?;
        let lock = self.op_lock(&row.id);
        let _g = lock.lock().await;
        let row = self.get(t, name)?;
        match row.status {
            SandboxStatus::Running => return Ok(row),
            SandboxStatus::Stopped => {}
            SandboxStatus::Paused => {
                self.restore_paused(&row).await?;
                return self.get(t, name);
            }
            s => {
                return Err(AppError::InvalidState {
                    name: row.name,
                    status: s,
                    hint: "only stopped or paused sandboxes can be resumed",
                });
            }
        }
        let spec = self.spec_to_start(&row)?;
        {
            let _admission = self.op_lock("admission").lock_owned().await;
            self.host_has_room(0)?;
            self.store
                .begin_op(&row.id, Op::Start, SandboxStatus::Starting)?;
        }
        let started = spec.clone();
        let result = match self.blocking(move |d| d.start(&started)).await {
            Ok(()) => self.prepare_link(&spec).await,
            Err(e) => Err(e),
        };
        crate::fault::point("start.started");
        if let Err(e) = result {
            self.store
                .set_status(&row.id, SandboxStatus::Stopped, Some(&e.to_string()), None)?;
            return Err(e);
        }
        self.store
            .set_status(&row.id, SandboxStatus::Running, None, Some(&now_rfc3339()))?;
        tracing::info!(sandbox = %row.name, "sandbox started");
        self.get(t, name)
    }

    /// Pull `image` for sandbox `id`'s creation, its progress going to the creation's events.
    async fn pull_for(
        &self,
        id: &str,
        image: &str,
    ) -> Result<(crate::images::Image, bool), AppError> {
        self.with_progress(id, |tx| async move {
            self.images.ensure(image, tx).await.map_err(AppError::from)
        })
        .await
    }

    /// Run the pull `make` starts, its progress shown as sandbox `id`'s.
    async fn with_progress<T, F>(
        &self,
        id: &str,
        make: impl FnOnce(crate::images::Progress) -> F,
    ) -> Result<T, AppError>
    where
        F: std::future::Future<Output = Result<T, AppError>>,
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel(32);
        let pull = make(Some(tx));
        tokio::pin!(pull);
        loop {
            tokio::select! {
                r = &mut pull => return r,
                Some(ev) = rx.recv() => {
                    if let islo_api::ImagePullEvent::Progress { layer, current, total } = ev {
                        self.pull_progress(id, layer, current, total);
                    }
                }
            }
        }
    }

    /// Snapshot `snap`'s base on this node for sandbox `id`, pulled (with progress) when it
    /// was saved on another node.
    async fn snapshot_for(
        &self,
        id: &str,
        snap: &str,
        base: &super::snapshots::Base,
    ) -> Result<super::snapshots::Base, AppError> {
        self.with_progress(id, |tx| self.local_base(snap, base, tx))
            .await
    }

    /// Remove every trace of a sandbox; its record stays readable by id as `deleted`.
    pub async fn delete(&self, t: &Tenant, name: &str) -> Result<(), AppError> {
        let _busy = (!self.warm.holds(t)).then(|| self.warm.busy());
        let row = self.get(t, name)?;
        let lock = self.op_lock(&row.id);
        let _g = lock.lock().await;
        let row = self.get(t, name)?;
        // What the agent recorded outlives the sandbox.
        if row.status == SandboxStatus::Running && self.agent_answers(&row).await {
            self.sync_agent_sessions(&row).await;
        }
        // From here the delete is finished by reconciliation if islod dies.
        self.store.begin_op(&row.id, Op::Delete, row.status)?;
        let id = SandboxId(row.id.clone());
        let destroyed = self.blocking(move |d| d.destroy(&id)).await;
        crate::fault::point("delete.destroyed");
        if let Err(e) = destroyed {
            self.store
                .set_status(&row.id, SandboxStatus::Failed, Some(&e.to_string()), None)?;
            return Err(e);
        }
        self.release_ids(&row.id);
        self.revoke_all_shares(&row.id);
        self.store.mark_deleted(&row.id, &now_rfc3339())?;
        self.network_changed(Some(&SandboxId(row.id.clone())));
        tracing::info!(sandbox = %row.name, id = %row.id, "sandbox deleted");
        Ok(())
    }
}

/// The back-end spec stored at creation.
pub fn runtime_spec(row: &SandboxRow) -> Result<islo_runtime::SandboxSpec, AppError> {
    row.stored
        .spec
        .clone()
        .ok_or_else(|| AppError::Internal(format!("sandbox {} has no runtime spec yet", row.id)))
}

/// The image's environment stored at creation.
pub fn image_env(row: &SandboxRow) -> Vec<(String, String)> {
    row.stored.image_env.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs() {
        assert_eq!(resolve_workdir("/workspace").unwrap(), "/workspace");
        assert_eq!(resolve_workdir("backend").unwrap(), "/workspace/backend");
        assert_eq!(resolve_workdir("/srv//app/").unwrap(), "/srv/app");
        assert!(resolve_workdir("../etc").is_err());
        assert!(resolve_workdir(&"a".repeat(300)).is_err());
    }

    #[test]
    fn ranges_and_defaults() {
        let c = check(&CreateSandboxRequest::default()).unwrap();
        assert_eq!(
            (c.vcpus, c.memory_mb, c.disk_gb, c.image.as_str()),
            (2, 2048, 10, "python:3.12-slim")
        );
        let bad = CreateSandboxRequest {
            vcpus: Some(9),
            ..Default::default()
        };
        assert!(matches!(check(&bad), Err(AppError::Validation(_))));
        let bad = CreateSandboxRequest {
            memory_mb: Some(128),
            ..Default::default()
        };
        assert!(check(&bad).is_err());
        let bad = CreateSandboxRequest {
            env: Some(BTreeMap::from([("A=B".into(), "x".into())])),
            ..Default::default()
        };
        assert!(check(&bad).is_err());
    }
}
