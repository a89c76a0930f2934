//! Creates and removals under way, for background disk work to keep out of their way.
//!
//! A create's ext4 mount and a removal's unmount write their disk's superblock through to
//! the host file system (the loop device turns the write's FUA into an `fsync` of the image),
//! and the host commits one journal for every such write. Background work that writes out
//! or frees files at the same moment (the disk pool's refill, the trash) made that commit
//! wait for its I/O too: a create whose mount met a refill's write-out took ~9 ms to mount
//! instead of ~3 here. Such work waits for a quiet moment ([`Activity::wait_quiet`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after the last create or removal ended the host counts as quiet.
const QUIET_FOR: Duration = Duration::from_millis(20);
/// How often a waiter looks again.
const QUIET_POLL: Duration = Duration::from_millis(5);
/// The longest a waiter waits before it goes on anyway, so a host that is never quiet
/// still gets its pool refilled and its trash emptied.
const QUIET_AT_MOST: Duration = Duration::from_secs(2);

/// Creates and removals under way, and when the last one ended.
#[derive(Default)]
pub(super) struct Activity {
    under_way: AtomicUsize,
    last_ended: Mutex<Option<Instant>>,
}

impl Activity {
    /// Mark a create or removal under way until the guard drops.
    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        self.under_way.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Whether nothing is under way and nothing ended in the last [`QUIET_FOR`].
    fn quiet(&self) -> bool {
        if self.under_way.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let last = *self.last_ended.lock().unwrap_or_else(|p| p.into_inner());
        last.is_none_or(|t| t.elapsed() >= QUIET_FOR)
    }

    /// Wait (at most [`QUIET_AT_MOST`]) until nothing is under way.
    pub(super) fn wait_quiet(&self) {
        let until = Instant::now() + QUIET_AT_MOST;
        while !self.quiet() && Instant::now() < until {
            std::thread::sleep(QUIET_POLL);
        }
    }
}

/// A create or removal under way (from [`Activity::busy`]).
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.last_ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.0.under_way.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_only_when_nothing_is_under_way_and_a_moment_has_passed() {
        let a = Arc::new(Activity::default());
        assert!(a.quiet(), "nothing ever happened");
        let one = a.busy();
        let two = a.busy();
        assert!(!a.quiet());
        drop(one);
        assert!(!a.quiet(), "one is still under way");
        drop(two);
        assert!(!a.quiet(), "the last one ended just now");
        std::thread::sleep(QUIET_FOR);
        assert!(a.quiet());
        let t = Instant::now();
        a.wait_quiet();
        assert!(t.elapsed() < QUIET_AT_MOST, "a quiet host is not waited for");
    }
}
