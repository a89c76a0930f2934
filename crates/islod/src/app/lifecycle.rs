//! Lifecycle policies (`lifecycle` on create): sandboxes that pause when idle or after a
//! while, are deleted after a while, and wake on activity when paused.
//!
//! Activity is an exec, a terminal, SSH or port-forward stream (the whole time one is open),
//! a files-API call or a gateway request. It is counted in memory, and every [`TICK`] the
//! enforcer writes it to the store (`store::activity`) and acts on the policies, so they hold
//! across islod's restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use islo_api::{LifecyclePolicy, SandboxStatus};

use super::{App, AppError, Tenant};
use crate::store::{ActivityRow, SandboxRow};

/// How often policies are looked at.
const TICK: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    row: ActivityRow,
    /// Streams open now (each keeps the sandbox active).
    busy: u32,
    dirty: bool,
}

/// Activity of every sandbox, shared with the gateway and with open streams.
#[derive(Default)]
pub struct Activity {
    seen: Mutex<HashMap<String, Seen>>,
}

impl Activity {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Something happened in sandbox `id` now.
    pub fn touch(&self, id: &str) {
        let mut m = self.lock();
        let s = m.entry(id.to_string()).or_default();
        s.row.last_active_ms = now_ms();
        s.dirty = true;
    }

    /// A stream of `id` opens; the sandbox is active until the guard drops.
    pub fn busy(self: &Arc<Self>, id: &str) -> Busy {
        self.touch(id);
        self.lock().entry(id.to_string()).or_default().busy += 1;
        Busy {
            activity: self.clone(),
            id: id.to_string(),
        }
    }

    /// A fresh start for `id`'s clocks (created, resumed, paused).
    fn restart(&self, id: &str) {
        let mut m = self.lock();
        let s = m.entry(id.to_string()).or_default();
        s.row = ActivityRow {
            last_active_ms: now_ms(),
            running_ms: 0,
        };
        s.dirty = true;
    }
}

/// An open stream (see [`Activity::busy`]).
pub struct Busy {
    activity: Arc<Activity>,
    id: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut m = self.activity.lock();
        if let Some(s) = m.get_mut(&self.id) {
            s.busy = s.busy.saturating_sub(1);
            s.row.last_active_ms = now_ms();
            s.dirty = true;
        }
    }
}

/// What a policy asks of a sandbox now.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    Delete(String),
    Pause(String),
}

/// What `policy` asks of a sandbox created at `created_ms`, in `status`, with activity `seen`.
fn due(
    policy: &LifecyclePolicy,
    status: SandboxStatus,
    created_ms: u64,
    seen: &Seen,
    now: u64,
) -> Option<Due> {
    let secs = |s: u64| s.saturating_mul(1000);
    if let Some(d) = policy.delete_after
        && now >= created_ms.saturating_add(secs(d))
    {
        return Some(Due::Delete(format!(
            "lifecycle.delete_after ({d} s after creation)"
        )));
    }
    if status != SandboxStatus::Running {
        return None;
    }
    if let Some(p) = policy.pause_after
        && seen.row.running_ms >= secs(p)
    {
        return Some(Due::Pause(format!(
            "paused by lifecycle.pause_after ({p} s running)"
        )));
    }
    match policy.pause_after_idle {
        Some(i) if seen.busy == 0 && now >= seen.row.last_active_ms.saturating_add(secs(i)) => {
            Some(Due::Pause(format!(
                "paused by lifecycle.pause_after_idle ({i} s without activity)"
            )))
        }
        _ => None,
    }
}

fn created_ms(row: &SandboxRow) -> u64 {
    time::OffsetDateTime::parse(
        &row.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
    .unwrap_or(0)
}

impl App {
    /// Something happened in sandbox `id` (see the module's text).
    pub fn touch(&self, id: &str) {
        self.activity.touch(id);
    }

    /// Keep sandbox `id` active while the returned guard lives (an open stream).
    pub fn busy(&self, id: &str) -> Busy {
        self.activity.busy(id)
    }

    /// The running sandbox `name`, woken first when it is paused and its policy says
    /// `auto_resume: on_activity`; an activity.
    pub async fn awake(&self, t: &Tenant, name: &str) -> Result<SandboxRow, AppError> {
        let row = self.get(t, name)?;
        if row.status == SandboxStatus::Paused
            && LifecyclePolicy::resumes_on_activity(row.stored.lifecycle.as_ref())
        {
            tracing::info!(sandbox = %row.name, "resuming a paused sandbox on activity");
            self.resume(t, name).await?;
        }
        let row = self.running(t, name)?;
        self.touch(&row.id);
        Ok(row)
    }

    /// Clocks start afresh (a sandbox was created or resumed).
    pub(super) fn clocks_restart(&self, id: &str) {
        self.activity.restart(id);
    }

    /// Enforce lifecycle policies until islod stops.
    pub fn enforce_lifecycles(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        if let Ok(saved) = self.store.activity() {
            let mut m = self.activity.lock();
            for (id, row) in saved {
                m.entry(id).or_insert(Seen {
                    row,
                    ..Seen::default()
                });
            }
        }
        let app = self.clone();
        tokio::spawn(async move {
            let mut last = std::time::Instant::now();
            loop {
                tokio::time::sleep(TICK).await;
                let ran = last.elapsed().as_millis() as u64;
                last = std::time::Instant::now();
                if let Err(e) = app.lifecycle_tick(ran).await {
                    tracing::warn!(error = %e, "enforcing lifecycle policies");
                }
            }
        })
    }

    async fn lifecycle_tick(self: &Arc<Self>, ran_ms: u64) -> Result<(), AppError> {
        let rows: Vec<SandboxRow> = self.store.live_with_lifecycle()?;
        let now = now_ms();
        let mut todo = Vec::new();
        let mut dirty = Vec::new();
        {
            let mut m = self.activity.lock();
            for row in &rows {
                let s = m.entry(row.id.clone()).or_insert_with(|| Seen {
                    row: ActivityRow {
                        last_active_ms: now,
                        running_ms: 0,
                    },
                    dirty: true,
                    ..Seen::default()
                });
                if row.status == SandboxStatus::Running {
                    s.row.running_ms += ran_ms;
                    s.dirty = true;
                }
                if let Some(policy) = &row.stored.lifecycle
                    && let Some(d) = due(policy, row.status, created_ms(row), s, now)
                {
                    todo.push((row.clone(), d));
                }
                if std::mem::take(&mut s.dirty) {
                    dirty.push((row.id.clone(), s.row));
                }
            }
        }
        self.store.save_activity(&dirty)?;
        for (row, d) in todo {
            let t = Tenant {
                id: row.tenant_id.clone(),
                name: String::new(),
            };
            let done = match &d {
                Due::Delete(why) => {
                    tracing::info!(sandbox = %row.name, "deleting: {why}");
                    self.delete(&t, &row.name).await
                }
                Due::Pause(why) => self.pause_because(&t, &row.name, Some(why)).await.map(drop),
            };
            if let Err(e) = done {
                tracing::warn!(sandbox = %row.name, error = %e, "lifecycle policy: {d:?}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(last: u64, running: u64, busy: u32) -> Seen {
        Seen {
            row: ActivityRow {
                last_active_ms: last,
                running_ms: running,
            },
            busy,
            dirty: false,
        }
    }

    #[test]
    fn each_policy_fires_when_due_and_not_before() {
        let p = LifecyclePolicy {
            pause_after_idle: Some(10),
            ..Default::default()
        };
        let run = SandboxStatus::Running;
        assert_eq!(due(&p, run, 0, &seen(1_000, 0, 0), 10_999), None);
        assert!(matches!(
            due(&p, run, 0, &seen(1_000, 0, 0), 11_000),
            Some(Due::Pause(_))
        ));
        assert_eq!(
            due(&p, run, 0, &seen(1_000, 0, 1), 99_000),
            None,
            "a stream is open"
        );
        assert_eq!(
            due(&p, SandboxStatus::Paused, 0, &seen(0, 0, 0), 99_000),
            None
        );
        let p = LifecyclePolicy {
            pause_after: Some(5),
            ..Default::default()
        };
        assert_eq!(due(&p, run, 0, &seen(0, 4_999, 0), 1), None);
        assert!(matches!(
            due(&p, run, 0, &seen(0, 5_000, 1), 1),
            Some(Due::Pause(_))
        ));
        let p = LifecyclePolicy {
            delete_after: Some(60),
            pause_after_idle: Some(1),
            ..Default::default()
        };
        let paused = SandboxStatus::Paused;
        assert_eq!(due(&p, paused, 1_000, &seen(0, 0, 0), 60_999), None);
        assert!(matches!(
            due(&p, paused, 1_000, &seen(0, 0, 0), 61_000),
            Some(Due::Delete(_))
        ));
    }

    #[test]
    fn a_stream_keeps_its_sandbox_busy_until_it_closes() {
        let a = Arc::new(Activity::default());
        let guard = a.busy("s");
        assert_eq!(a.lock()["s"].busy, 1);
        drop(guard);
        assert_eq!(a.lock()["s"].busy, 0);
        assert!(a.lock()["s"].row.last_active_ms > 0);
    }
}
