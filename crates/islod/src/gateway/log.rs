//! The decision log, bounded: a sandbox chooses how many requests it makes and how long their
//! paths are, so nothing it does may grow islod's memory or the host's disk without limit.
//!
//! - Fields are cut to a fixed length ([`clip`]).
//! - Each sandbox may log [`BURST`] decisions at once and [`PER_SECOND`] a second after that;
//!   what is over is counted and logged later as one `dropped` event saying how many.
//! - The queue to the writer holds [`QUEUE`] events; a full queue drops (and counts) too.
//! - The writer keeps the newest [`KEEP_PER_SANDBOX`] events of each sandbox; start-up drops
//!   those past `log_retention_days`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use islo_api::{EventAction, GatewayEventResponse};
use islo_gateway::Event;

use crate::store::Store;

/// Decisions written per transaction at most.
const BATCH: usize = 512;
/// Events waiting for the writer at most.
pub const QUEUE: usize = 8192;
/// Decisions a sandbox may log at once, and per second after that.
pub const BURST: f64 = 1000.0;
pub const PER_SECOND: f64 = 50.0;
/// Newest events kept per sandbox.
pub const KEEP_PER_SANDBOX: u64 = 20_000;
/// Longest stored path, host and reason, in bytes.
pub const MAX_PATH: usize = 1024;
const MAX_HOST: usize = 255;
const MAX_REASON: usize = 512;
const MAX_METHOD: usize = 16;

/// `s` cut to at most `max` bytes (on a character boundary), marked with `…` when cut.
pub fn clip(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

/// One sandbox's allowance.
struct Bucket {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

/// Where [`islo_gateway::Control::record`] puts decisions.
pub struct EventLog {
    tx: mpsc::SyncSender<Event>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl EventLog {
    /// Start the writer thread.
    pub fn start(store: std::sync::Arc<Store>) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Event>(QUEUE);
        std::thread::Builder::new()
            .name("gateway-log".into())
            .spawn(move || write_events(&store, &rx))
            .ok();
        Self {
            tx,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Queue `event` if its sandbox has allowance and the queue has room; otherwise count it.
    pub fn record(&self, event: Event) {
        let now = Instant::now();
        let summary = {
            let Ok(mut buckets) = self.buckets.lock() else {
                return;
            };
            if buckets.len() > 10_000 {
                // Sandboxes gone quiet (or removed) start afresh.
                buckets.retain(|_, b| b.dropped > 0 || now.duration_since(b.at).as_secs() < 60);
            }
            let b = buckets.entry(event.sandbox_id.clone()).or_insert(Bucket {
                tokens: BURST,
                at: now,
                dropped: 0,
            });
            b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * PER_SECOND).min(BURST);
            b.at = now;
            if b.tokens < 1.0 {
                b.dropped += 1;
                return;
            }
            b.tokens -= 1.0;
            std::mem::take(&mut b.dropped)
        };
        if summary > 0 {
            self.send(dropped_event(&event, summary));
        }
        let sandbox = event.sandbox_id.clone();
        if !self.send(event)
            && let Ok(mut buckets) = self.buckets.lock()
            && let Some(b) = buckets.get_mut(&sandbox)
        {
            b.dropped += 1;
        }
    }

    fn send(&self, event: Event) -> bool {
        self.tx.try_send(event).is_ok()
    }
}

/// The event that says `n` decisions of `like`'s sandbox were not logged.
fn dropped_event(like: &Event, n: u64) -> Event {
    Event {
        sandbox_id: like.sandbox_id.clone(),
        tenant_id: like.tenant_id.clone(),
        at: SystemTime::now(),
        peer: like.peer,
        scheme: like.scheme,
        host: String::new(),
        method: String::new(),
        path: String::new(),
        rule_id: None,
        action: EventAction::Dropped,
        status: 0,
        bytes_up: 0,
        bytes_down: 0,
        latency_ms: 0.0,
        reason: format!(
            "{n} decisions were not logged: this sandbox made more than {PER_SECOND} requests a \
             second (bursts of {BURST}) or the log's queue was full"
        ),
    }
}

fn stored(e: Event) -> (String, GatewayEventResponse) {
    let at = time::OffsetDateTime::from(e.at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let event = GatewayEventResponse {
        id: 0,
        sandbox_id: e.sandbox_id,
        at,
        scheme: e.scheme.to_string(),
        host: clip(e.host, MAX_HOST),
        method: clip(e.method, MAX_METHOD),
        path: clip(e.path, MAX_PATH),
        rule_id: e.rule_id,
        action: e.action,
        status: e.status,
        bytes_up: e.bytes_up,
        bytes_down: e.bytes_down,
        latency_ms: e.latency_ms,
        reason: clip(e.reason, MAX_REASON),
    };
    (e.tenant_id, event)
}

/// Write decisions in batches until every sender is gone; trim each sandbox written to its
/// newest [`KEEP_PER_SANDBOX`], at most once a second.
fn write_events(store: &Store, rx: &mpsc::Receiver<Event>) {
    let mut touched: Vec<String> = Vec::new();
    let mut trimmed = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![stored(first)];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(stored(e)),
                Err(_) => break,
            }
        }
        for (_, e) in &batch {
            if !touched.contains(&e.sandbox_id) {
                touched.push(e.sandbox_id.clone());
            }
        }
        if let Err(e) = store.insert_gateway_events(&batch) {
            tracing::warn!(error = %e, events = batch.len(), "could not record gateway decisions");
        }
        if trimmed.elapsed() >= Duration::from_secs(1) {
            for id in touched.drain(..) {
                if let Err(e) = store.trim_gateway_events(&id, KEEP_PER_SANDBOX) {
                    tracing::warn!(error = %e, sandbox = %id, "could not trim gateway decisions");
                }
            }
            trimmed = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_short_text_and_marks_cuts() {
        assert_eq!(clip("short".into(), 10), "short");
        let long = clip("é".repeat(100), 11);
        assert!(long.len() <= 11 && long.ends_with('…'), "{long}");
        assert_eq!(clip("/".repeat(60_000), MAX_PATH).len(), MAX_PATH);
    }
}
