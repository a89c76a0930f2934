//! What the HTTP surface asks of islod beyond sandboxes: who a credential belongs to, session
//! tokens, server facts, image pulls and scratch space for uploads.

use std::path::PathBuf;

use islo_api::{ImagePullEvent, ServerInfo};
use tokio::sync::mpsc;

use super::{App, AppError, Tenant};
use crate::store::SandboxRow;

impl App {
    /// What islod's host has and lacks, and what to do about it.
    pub async fn doctor(&self) -> islo_api::DoctorReport {
        use crate::doctor;
        let name = self.driver.name();
        let mut checks = vec![match name.as_str() {
            "fake" => islo_api::DoctorCheck {
                name: "runtime".into(),
                ok: false,
                detail: "the fake runtime: sandboxes are not isolated".into(),
                fix: Some("run islod with --runtime crun (or runc)".into()),
            },
            rt => match doctor::version(rt) {
                Ok(v) => islo_api::DoctorCheck {
                    name: "runtime".into(),
                    ok: true,
                    detail: v,
                    fix: None,
                },
                Err(e) => islo_api::DoctorCheck {
                    name: "runtime".into(),
                    ok: false,
                    detail: e,
                    fix: Some("install crun (apt-get install crun)".into()),
                },
            },
        }];
        let userns = self.driver.user_namespaces();
        checks.push(islo_api::DoctorCheck {
            name: "user_namespaces".into(),
            ok: userns.is_ok() && self.settings.ids.is_some(),
            detail: match (&userns, &self.settings.ids) {
                (Ok(()), Some(_)) => "each sandbox in a user namespace of its own".into(),
                (Ok(()), None) => "off (isolation.userns: false): a sandbox's root is the host's".into(),
                (Err(e), _) => e.clone(),
            },
            fix: (userns.is_err() || self.settings.ids.is_none()).then(|| {
                "use Linux 5.12+ with the state directory on ext4, xfs, btrfs or tmpfs, and                  isolation.userns: true"
                    .into()
            }),
        });
        checks.push(self.isolation_check());
        checks.push(doctor::cgroups(std::path::Path::new("/sys/fs/cgroup")));
        checks.push(doctor::nftables());
        checks.push(islo_api::DoctorCheck {
            name: "gateway".into(),
            ok: self.net().is_some() || name == "fake",
            detail: if self.net().is_some() {
                "sandboxes reach the network only through the gateway".into()
            } else {
                "off: sandboxes have loopback only".into()
            },
            fix: self
                .net()
                .is_none()
                .then(|| "set gateway.enabled: true".into()),
        });
        for (registry, url) in self.images.mirrors() {
            checks.push(doctor::mirror(&registry, &url).await);
        }
        checks.push(doctor::disk(std::path::Path::new(&self.settings.state_dir)));
        islo_api::DoctorReport { checks }
    }

    /// The isolation classes the host offers and why any other is missing; only the default
    /// class missing is a failure (`gvisor` is optional).
    fn isolation_check(&self) -> islo_api::DoctorCheck {
        let classes = self.driver.isolation_classes();
        let default = self.settings.default_isolation;
        let mut offered = Vec::new();
        let mut missing = Vec::new();
        for c in &classes {
            match &c.runtime {
                Ok(rt) => offered.push(format!("{} ({rt})", c.class)),
                Err(why) => missing.push(format!("{} not offered: {why}", c.class)),
            }
        }
        let default_ok = classes
            .iter()
            .any(|c| c.class == default && c.runtime.is_ok());
        let mut detail = format!("offered: {} (default {default})", offered.join(", "));
        if !missing.is_empty() {
            detail = format!("{detail}; {}", missing.join("; "));
        }
        islo_api::DoctorCheck {
            name: "isolation".into(),
            ok: default_ok,
            detail,
            fix: (!missing.is_empty()).then(|| {
                "for --isolation gvisor: apt-get install runsc, then restart islod".into()
            }),
        }
    }

    /// The tenant a credential (its hash) names: a session token still valid at `now`
    /// (unix seconds), or else an API key.
    pub fn tenant_for_secret(&self, hash: &str, now: i64) -> Result<Option<Tenant>, AppError> {
        let id = match self.store.tenant_for_token(hash, now)? {
            Some(id) => id,
            None => match self
                .store
                .tenant_for_key(hash, &crate::store::now_rfc3339())?
            {
                Some((id, _key)) => id,
                None => return Ok(None),
            },
        };
        let name = self.store.tenant_name(&id)?.unwrap_or_default();
        Ok(Some(Tenant { id, name }))
    }

    /// Record a session token (its hash) valid until `expires` for the owner of the API key
    /// hashed as `key`; `false` for an unknown key.
    pub fn issue_token(&self, key: &str, token: &str, expires: i64) -> Result<bool, AppError> {
        let Some((tenant, key_id)) = self
            .store
            .tenant_for_key(key, &crate::store::now_rfc3339())?
        else {
            return Ok(false);
        };
        self.store
            .insert_token(token, &tenant, Some(&key_id), expires)?;
        Ok(true)
    }

    /// What a running sandbox uses now, where the back end can tell.
    pub fn usage(&self, row: &SandboxRow) -> Option<islo_api::ui::SandboxUsage> {
        if row.status != islo_api::SandboxStatus::Running {
            return None;
        }
        self.driver
            .usage(&islo_runtime::SandboxId(row.id.clone()))
            .map(|u| islo_api::ui::SandboxUsage {
                memory_bytes: u.memory_bytes,
                cpu_usec: u.cpu_usec,
            })
    }

    /// What `GET /system` says to `t`.
    pub fn server_info(&self, t: &Tenant) -> Result<ServerInfo, AppError> {
        Ok(ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            runtime: self.driver.name(),
            tenant: t.name.clone(),
            state_dir: self.settings.state_dir.clone(),
            images_cached: self.store.image_count()?,
            sandboxes_running: self
                .store
                .running_count()?
                .saturating_sub(self.warm_running()?),
            isolation_classes: self.isolation_classes(),
            node: self.node_name(),
        })
    }

    /// The runtime's name (`crun`, `runc`, `fake`).
    pub fn runtime_name(&self) -> String {
        self.driver.name()
    }

    /// Pull `image` (progress on `progress`); the last event: done or the error.
    pub async fn pull_image(
        &self,
        image: &str,
        progress: mpsc::Sender<ImagePullEvent>,
    ) -> ImagePullEvent {
        match self.images.ensure(image, Some(progress)).await {
            Ok((img, cached)) => ImagePullEvent::Done {
                digest: img.digest,
                cached,
            },
            Err(e) => ImagePullEvent::Error {
                message: e.to_string(),
            },
        }
    }

    /// Where uploads are spooled (on the image cache's file system).
    pub fn scratch_dir(&self) -> PathBuf {
        self.images.tmp_dir()
    }

    /// Refuse when the host is too full to take an upload.
    pub fn ensure_room(&self) -> Result<(), AppError> {
        Ok(self.images.ensure_room()?)
    }
}
