//! Admission: a new or starting sandbox must fit its tenant's quota and the host.
//!
//! Quotas (`quotas:` in islod.yaml) count every sandbox a tenant has, stopped ones too: what
//! it may hold, not what it uses at the moment. The host's limits are checked as well: a
//! disk larger than the free space where sandboxes live, or more processes than the kernel's
//! `pid_max` leaves room for, are refused with what to do about it.

use super::{App, AppError, Tenant};

/// Processes left to the host whatever the sandboxes' pids limits add up to.
const PID_RESERVE: u64 = 4096;

/// What one sandbox asks for.
pub struct Ask {
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_gb: u32,
}

impl App {
    /// Refuse `ask` for a new sandbox of `t` beyond its quota or the host's room. Holds the
    /// admission lock: callers keep the guard until the sandbox is recorded.
    pub(super) async fn admit(
        &self,
        t: &Tenant,
        ask: &Ask,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>, AppError> {
        let guard = self.op_lock("admission").lock_owned().await;
        let q = self.settings.quotas;
        let (n, vcpus, mem, disk) = self.store.tenant_usage(&t.id)?;
        let over = |what: &str, have: u64, ask: u64, max: u64| {
            AppError::QuotaExceeded(format!(
                "{what}: tenant {} holds {have} and asks for {ask} more, past its quota of {max} \
                 (quotas.{what} in islod.yaml); remove sandboxes it no longer needs (islo rm)",
                t.name
            ))
        };
        if n + 1 > u64::from(q.sandboxes) {
            return Err(over("sandboxes", n, 1, u64::from(q.sandboxes)));
        }
        if vcpus + u64::from(ask.vcpus) > u64::from(q.vcpus) {
            return Err(over("vcpus", vcpus, ask.vcpus.into(), q.vcpus.into()));
        }
        if mem + u64::from(ask.memory_mb) > q.memory_mb {
            return Err(over("memory_mb", mem, ask.memory_mb.into(), q.memory_mb));
        }
        if disk + u64::from(ask.disk_gb) > q.disk_gb {
            return Err(over("disk_gb", disk, ask.disk_gb.into(), q.disk_gb));
        }
        self.host_has_room(ask.disk_gb)?;
        Ok(guard)
    }

    /// Refuse a disk the host cannot hold and processes past the kernel's `pid_max`.
    pub(super) fn host_has_room(&self, disk_gb: u32) -> Result<(), AppError> {
        let dir = std::path::Path::new(&self.settings.state_dir);
        let usable = crate::images::usable_bytes(dir)
            .map_err(|e| AppError::Internal(format!("statvfs {}: {e}", dir.display())))?;
        if u64::from(disk_gb) << 30 > usable {
            return Err(AppError::HostFull(format!(
                "a {disk_gb} GB disk does not fit: the host has {} GB free where sandboxes \
                 live (1 GB is kept back); ask for a smaller --disk or free space on the host",
                (usable + crate::images::HOST_RESERVE) >> 30
            )));
        }
        let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX);
        let per = u64::from(self.settings.pids_limit);
        let live = self.store.live_count()?;
        if (live + 1).saturating_mul(per) > pid_max.saturating_sub(PID_RESERVE) {
            return Err(AppError::HostFull(format!(
                "{live} sandboxes run with up to {per} processes each, and one more would pass \
                 what the kernel's pid_max ({pid_max}) leaves the host; stop a sandbox, lower \
                 pids_limit in islod.yaml, or raise kernel.pid_max (sysctl)"
            )));
        }
        Ok(())
    }
}
