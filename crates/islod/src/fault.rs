//! Crash points for the fault-injection tests.
//!
//! `ISLOD_FAULT=POINT` (or `POINT:N`, the Nth time it is reached) makes islod kill itself with
//! SIGKILL the moment it reaches [`point`] `POINT`: no destructor runs, nothing is flushed, as
//! when the host's OOM killer or a power cut ends it. The tests use this to stop islod at an
//! exact step of an operation instead of guessing with sleeps. Unset, a point costs one
//! relaxed atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The armed point and how many times it must be reached first.
struct Armed {
    name: String,
    nth: u64,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("ISLOD_FAULT")
                .ok()
                .filter(|v| !v.is_empty())?;
            let (name, nth) = match v.rsplit_once(':') {
                Some((n, k)) => (n.to_string(), k.parse().unwrap_or(1)),
                None => (v, 1),
            };
            Some(Armed {
                name,
                nth: nth.max(1),
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Die here if `ISLOD_FAULT` names this point.
pub fn point(name: &str) {
    let Some(a) = armed() else { return };
    if a.name != name || a.seen.fetch_add(1, Ordering::Relaxed) + 1 != a.nth {
        return;
    }
    eprintln!("islod: fault point {name} reached; killing itself (ISLOD_FAULT)");
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // SIGKILL to oneself is delivered before kill returns; abort in case it was not.
    std::process::abort();
}
