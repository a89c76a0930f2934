//! Where each sandbox's creation is, live: the phase (`creation_phase`) and the events of
//! `GET /sandboxes/{sandbox_name}/events`. Kept in memory while a creation runs and for a
//! while after it ends; a sandbox not here has finished (`ready`) or was kept `failed`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use islo_api::{CreationEvent, CreationPhase, SandboxStatus};
use tokio::sync::watch;

use super::App;
use crate::store::{SandboxRow, now_rfc3339};

/// How long an ended creation's last event stays to be read.
const KEEP_ENDED: Duration = Duration::from_secs(300);

/// A creation's events, and when it ended.
type Entry = (watch::Sender<CreationEvent>, Option<Instant>);

#[derive(Default)]
pub struct Creations {
    live: Mutex<HashMap<String, Entry>>,
}

fn event(phase: CreationPhase, detail: Option<String>) -> CreationEvent {
    CreationEvent {
        phase,
        detail,
        current: None,
        total: None,
        at: now_rfc3339(),
    }
}

impl Creations {
    fn send(&self, id: &str, ev: CreationEvent) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, (_, ended)| ended.is_none_or(|at| at.elapsed() < KEEP_ENDED));
        let done = ended(&ev).then(Instant::now);
        match live.get_mut(id) {
            Some((tx, at)) => {
                tx.send_replace(ev);
                *at = done;
            }
            None => {
                live.insert(id.to_string(), (watch::channel(ev).0, done));
            }
        }
    }

    fn current(&self, id: &str) -> Option<CreationEvent> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).map(|(tx, _)| tx.borrow().clone())
    }

    fn subscribe(&self, id: &str) -> Option<watch::Receiver<CreationEvent>> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).map(|(tx, _)| tx.subscribe())
    }

    #[cfg(test)]
    fn forget(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(id);
    }
}

impl App {
    /// Record that sandbox `id`'s creation entered `phase`.
    pub(super) fn phase(&self, id: &str, phase: CreationPhase, detail: Option<String>) {
        self.creations.send(id, event(phase, detail));
    }

    /// An image pull's progress during a creation.
    pub(super) fn pull_progress(&self, id: &str, layer: String, current: u64, total: u64) {
        let mut ev = event(CreationPhase::ImagePull, Some(layer));
        (ev.current, ev.total) = (Some(current), Some(total));
        self.creations.send(id, ev);
    }

    /// `creation_phase` of a sandbox.
    pub fn creation_phase(&self, row: &SandboxRow) -> CreationPhase {
        match self.creations.current(&row.id) {
            Some(e) => e.phase,
            None if row.status == SandboxStatus::Failed => CreationPhase::Failed,
            None => CreationPhase::Ready,
        }
    }

    /// The creation's events from now on (the current one first); `None` when it has ended
    /// and been forgotten (its phase is then [`Self::creation_phase`]).
    pub fn creation_events(&self, row: &SandboxRow) -> Option<watch::Receiver<CreationEvent>> {
        self.creations.subscribe(&row.id)
    }
}

/// Whether the creation is over.
pub fn ended(e: &CreationEvent) -> bool {
    matches!(e.phase, CreationPhase::Ready | CreationPhase::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_event_is_kept_and_watched() {
        let c = Creations::default();
        assert!(c.subscribe("a").is_none());
        c.send("a", event(CreationPhase::ImagePull, None));
        let mut rx = c.subscribe("a").unwrap();
        c.send("a", event(CreationPhase::Disk, None));
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().phase, CreationPhase::Disk);
        c.send("a", event(CreationPhase::Ready, None));
        assert!(ended(&c.current("a").unwrap()));
        c.forget("a");
        assert!(c.current("a").is_none());
    }
}
