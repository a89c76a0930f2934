//! Sandboxes started ahead (`warm_pool` in islod's config).
//!
//! islod keeps up to `warm_pool` sandboxes running of the kind last created (its image, vCPUs,
//! memory and disk; the container class; no snapshot) under a tenant of its own, which no key
//! can name (its name holds a control character, which tenant names may not). A create of that
//! kind takes one: the record passes to the caller's tenant under the caller's name, with the
//! caller's env, workdir, gateway profile, environment and lifecycle (the running sandbox holds
//! none of these: each command is given them as it starts, the gateway looks its sandbox up by
//! address), and its hostname becomes the name. The pool then starts another once no create or
//! removal is under way; a create of another kind makes the pool drain and fill with that kind.
//! Otherwise they are sandboxes like any other: reconciled after a crash, watched, removed.
//! What a create costs the host (mounts, namespaces, the runtime) grows with the number of
//! sandboxes on it; a claimed sandbox paid that before anyone waited for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use islo_api::{CreateSandboxRequest, SandboxStatus};
use islo_runtime::SandboxId;
use islo_runtime::activity::{Activity, Busy, STILL};

use super::{App, AppError, Tenant};
use crate::store::{SandboxFilter, SandboxRow, StoreError, StoredSpec};

/// The tenant holding the pool's sandboxes.
pub const WARM_TENANT: &str = "\u{7f}warm";

/// After a refill failed, how long before the next try.
const RETRY: Duration = Duration::from_secs(30);

/// What a warm sandbox must have been made as to stand in for a create.
#[derive(Debug, Clone)]
pub(super) struct Kind {
    pub image: String,
    /// What `image` pointed at (a warm sandbox runs what was pulled then).
    pub digest: Option<String>,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_gb: u32,
}

/// The same shape and the same image: the same digest however the image was named
/// (`busybox`, `busybox:latest`, its registry's full name), else the same name and no digest.
impl PartialEq for Kind {
    fn eq(&self, o: &Self) -> bool {
        let same_image = match (&self.digest, &o.digest) {
            (Some(a), Some(b)) => a == b,
            _ => self.image == o.image && self.digest == o.digest,
        };
        same_image
            && (self.vcpus, self.memory_mb, self.disk_gb) == (o.vcpus, o.memory_mb, o.disk_gb)
    }
}

impl Eq for Kind {}

impl Kind {
    pub(super) fn of(r: &SandboxRow) -> Kind {
        Kind {
            image: r.image.clone(),
            digest: r.stored.image_digest.clone(),
            vcpus: r.vcpus,
            memory_mb: r.memory_mb,
            disk_gb: r.disk_gb,
        }
    }
}

/// The pool's state in islod.
#[derive(Default)]
pub(super) struct Warm {
    tenant: OnceLock<Tenant>,
    kind: Mutex<Option<Kind>>,
    wake: tokio::sync::Notify,
    /// Creates and removals of callers under way (the refill waits for them).
    activity: Arc<Activity>,
    /// How many sandboxes were taken from the pool.
    claims: Arc<AtomicU64>,
}

impl Warm {
    fn kind(&self) -> Option<Kind> {
        self.kind.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Set the kind to `new` if it is still `old`; whether it was.
    fn replace_kind(&self, old: &Kind, new: Kind) -> bool {
        let mut cur = self.kind.lock().unwrap_or_else(|p| p.into_inner());
        let still = cur.as_ref() == Some(old);
        if still {
            *cur = Some(new);
        }
        still
    }

    fn set_kind(&self, k: Kind) {
        let mut cur = self.kind.lock().unwrap_or_else(|p| p.into_inner());
        *cur = Some(k);
    }

    /// Whether `t` is the pool's own tenant.
    pub(super) fn holds(&self, t: &Tenant) -> bool {
        self.holds_id(&t.id)
    }

    /// Whether tenant id `id` is the pool's own.
    pub(super) fn holds_id(&self, id: &str) -> bool {
        self.tenant.get().is_some_and(|w| w.id == id)
    }

    /// Held while a caller's create or removal is under way.
    pub(super) fn busy(&self) -> Busy {
        self.activity.caller()
    }
}

impl App {
    /// Keep the pool filled until islod stops (`None` when there is no pool: `warm_pool` is
    /// 0, which first removes the sandboxes an earlier pool left, or islod is a node of a
    /// cluster, whose creates are placed across nodes).
    pub async fn keep_warm(
        self: &Arc<Self>,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, AppError> {
        let size = self.settings.warm_pool;
        if self.clustered() {
            if size > 0 {
                tracing::warn!("warm_pool is not used by a node of a cluster");
            }
            return Ok(None);
        }
        let store = self.store.clone();
        let id = tokio::task::spawn_blocking(move || match size {
            // No pool: only what an earlier one left is looked for.
            0 => store.tenant_id(WARM_TENANT),
            _ => store.ensure_tenant(WARM_TENANT).map(Some),
        })
        .await??;
        let Some(id) = id else {
            return Ok(None);
        };
        let t = Tenant {
            id,
            name: WARM_TENANT.into(),
        };
        let _ = self.warm.tenant.set(t.clone());
        let held = self.warm_rows(&t)?;
        if size == 0 {
            for r in held {
                self.drop_warm(&t, &r).await;
            }
            return Ok(None);
        }
        if let Some(newest) = held.first() {
            self.warm.set_kind(Kind::of(newest));
        }
        let app = self.clone();
        Ok(Some(tokio::spawn(async move {
            loop {
                match app.refill(&t).await {
                    Ok(()) => {
                        let wake = app.warm.wake.notified();
                        let _ = tokio::time::timeout(Duration::from_secs(60), wake).await;
                    }
                    Err(e) => {
                        // Not at every create's wake: a host that cannot start one (full, a
                        // quota) would pay a failing create each time.
                        tracing::warn!(error = %e, "starting a sandbox ahead; trying again in 30 s");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        })))
    }

    /// The pool's sandboxes, newest first.
    fn warm_rows(&self, t: &Tenant) -> Result<Vec<SandboxRow>, AppError> {
        let f = SandboxFilter {
            name_prefix: None,
            statuses: Vec::new(),
            search: None,
            limit: 1000,
            offset: 0,
        };
        Ok(self.store.list_sandboxes(&t.id, &f)?.0)
    }

    /// How many of the host's running sandboxes the pool holds (no one's: `GET /system`
    /// leaves them out of its count).
    pub(super) fn warm_running(&self) -> Result<u64, AppError> {
        let Some(t) = self.warm.tenant.get() else {
            return Ok(0);
        };
        let running = |r: &&SandboxRow| r.status == SandboxStatus::Running;
        Ok(self.warm_rows(t)?.iter().filter(running).count() as u64)
    }

    async fn drop_warm(&self, t: &Tenant, r: &SandboxRow) {
        if let Err(e) = self.delete(t, &r.name).await {
            tracing::warn!(sandbox = %r.name, error = %e, "removing a sandbox started ahead");
        }
    }

    /// Remove what is not of the wanted kind or not running; start what is missing.
    async fn refill(self: &Arc<Self>, t: &Tenant) -> Result<(), AppError> {
        let Some(mut want) = self.warm.kind() else {
            return Ok(());
        };
        loop {
            let mut have = 0;
            for r in self.warm_rows(t)? {
                if Kind::of(&r) == want && r.status == SandboxStatus::Running {
                    have += 1;
                } else {
                    self.drop_warm(t, &r).await;
                }
            }
            if have >= self.settings.warm_pool || self.warm.kind().as_ref() != Some(&want) {
                return Ok(());
            }
            // With one in hand, out of the way of a burst of a caller's creates; an empty
            // pool refills between them. A claim meanwhile counts again.
            let claims = self.warm.claims.load(Ordering::SeqCst);
            let still = if have > 0 { STILL } else { Duration::ZERO };
            if !self.quiet(still, claims).await {
                continue;
            }
            let req = CreateSandboxRequest {
                name: Some(format!("warm-{}", hex::encode(rand::random::<[u8; 6]>()))),
                image: Some(want.image.clone()),
                vcpus: Some(want.vcpus),
                memory_mb: Some(want.memory_mb),
                disk_gb: Some(want.disk_gb),
                ..Default::default()
            };
            let made = Kind::of(&self.create(t, req).await?);
            // The image's name points at other content now (pulled again): the pool turns to
            // what it makes, or it would remove each one it makes and make it again.
            if made != want && self.warm.replace_kind(&want, made.clone()) {
                want = made;
            }
        }
    }

    /// Wait until no create or removal is under way and none of a caller's has ended for
    /// `still` (at most 2 s, [`Activity::wait_still`]); false if a sandbox was taken from the
    /// pool meanwhile (`claims` was the count of takes before).
    async fn quiet(&self, still: Duration, claims: u64) -> bool {
        let (activity, taken) = (self.warm.activity.clone(), self.warm.claims.clone());
        let taken = move || taken.load(Ordering::SeqCst) != claims;
        let waited = tokio::task::spawn_blocking(move || {
            activity.wait_still(still, &taken);
            !taken()
        });
        waited.await.unwrap_or(true)
    }

    /// A create of kind `k` is under way: the pool is to hold that kind from now on.
    pub(super) fn want_warm(&self, k: Kind) {
        if self.settings.warm_pool > 0 && self.warm.tenant.get().is_some() {
            self.warm.set_kind(k);
            self.warm.wake.notify_one();
        }
    }

    /// Take a running warm sandbox of kind `k` for `row` (the caller's record, its id not yet
    /// used): `Some` record as stored, named and running. `shape` gives the warm sandbox's
    /// stored spec what the caller asked for.
    pub(super) async fn claim_warm(
        &self,
        k: &Kind,
        row: &SandboxRow,
        shape: impl Fn(&mut StoredSpec),
    ) -> Result<Option<SandboxRow>, AppError> {
        let Some(t) = self
            .warm
            .tenant
            .get()
            .filter(|_| self.settings.warm_pool > 0)
        else {
            return Ok(None);
        };
        // A taken name is refused before a warm sandbox is named for it (the claim's `UPDATE`
        // refuses it again should a create of the same name win the race).
        if self
            .store
            .sandbox_by_name(&row.tenant_id, &row.name)?
            .is_some()
        {
            return Err(AppError::AlreadyExists(row.name.clone()));
        }
        for w in self.warm_rows(t)? {
            if Kind::of(&w) != *k || w.status != SandboxStatus::Running {
                continue;
            }
            let lock = self.op_lock(&w.id);
            let _g = lock.lock().await;
            // Another create may have taken it while this one waited for the lock.
            match self.store.sandbox_by_id(&t.id, &w.id)? {
                Some(now) if now.status == SandboxStatus::Running && now.deleted_at.is_none() => {}
                _ => continue,
            }
            let mut mine = row.clone();
            mine.id = w.id.clone();
            mine.stored = w.stored.clone();
            mine.stored.spec = w.stored.spec.clone().map(|mut s| {
                (s.hostname, s.ahead) = (row.name.clone(), false);
                s
            });
            shape(&mut mine.stored);
            mine.status = SandboxStatus::Running;
            mine.started_at = Some(row.created_at.clone());
            // Named before its record passes: islod ending in between leaves it the pool's
            // (its next taker names it again), never the caller's under another name.
            if let Err(e) = self.hand_over(&mine).await {
                tracing::warn!(sandbox = %w.name, error = %e, "a sandbox started ahead could not be handed over; removed");
                self.undo_create(&w.id).await?;
                continue;
            }
            let store = self.store.clone();
            let (from, m) = (t.id.clone(), mine.clone());
            match tokio::task::spawn_blocking(move || store.claim_warm(&from, &m)).await? {
                Ok(true) => {}
                Ok(false) => continue,
                Err(StoreError::NameTaken(n)) => return Err(AppError::AlreadyExists(n)),
                Err(e) => return Err(e.into()),
            }
            // The gateway looks its tenant and profile up again.
            self.network_changed(Some(&SandboxId(mine.id.clone())));
            self.clocks_restart(&mine.id);
            self.warm.claims.fetch_add(1, Ordering::SeqCst);
            self.warm.wake.notify_one();
            return Ok(Some(mine));
        }
        Ok(None)
    }

    /// Give a sandbox about to be taken its name and the host's normal priority.
    async fn hand_over(&self, row: &SandboxRow) -> Result<(), AppError> {
        let spec = super::sandboxes::runtime_spec(row)?;
        let name = row.name.clone();
        self.blocking(move |d| d.hand_over(&spec, &name)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(image: &str, digest: Option<&str>, memory_mb: u32) -> Kind {
        Kind {
            image: image.into(),
            digest: digest.map(str::to_string),
            vcpus: 2,
            memory_mb,
            disk_gb: 10,
        }
    }

    #[test]
    fn a_kind_is_its_shape_and_its_images_content() {
        let d = Some("sha256:aa");
        assert_eq!(
            kind("busybox", d, 256),
            kind("docker.io/library/busybox:latest", d, 256)
        );
        assert_ne!(
            kind("busybox", d, 256),
            kind("busybox", d, 512),
            "another shape"
        );
        assert_ne!(
            kind("busybox", d, 256),
            kind("busybox", Some("sha256:bb"), 256),
            "the name now points at other content"
        );
        assert_eq!(kind("busybox", None, 256), kind("busybox", None, 256));
        assert_ne!(
            kind("busybox", None, 256),
            kind("busybox", d, 256),
            "not pulled yet"
        );
        assert_ne!(kind("busybox", None, 256), kind("alpine", None, 256));
    }
}
