//! Creates and removals under way, for background work to keep out of their way: the OCI
//! back end's disk pool and trash, and islod's pool of sandboxes started ahead.
//!
//! A create's ext4 mount and a removal's unmount write their disk's superblock through to
//! the host file system (the loop device turns the write's FUA into an `fsync` of the image),
//! and the host commits one journal for every such write. Background work that writes out
//! or frees files at the same moment (the disk pool's refill, the trash) made that commit
//! wait for its I/O too: a create whose mount met a refill's write-out took ~9 ms to mount
//! instead of ~3 here. Such work waits until none is under way ([`Activity::wait_quiet`]):
//! between a create and the next one, not during either.
//!
//! Work that has stock in hand can wait longer: islod's pool of sandboxes started ahead,
//! while it still holds one, and the trash wait until no caller's create or removal has
//! ended for a moment ([`Activity::wait_still`]), so a burst of a caller's creates and
//! removals, each a few milliseconds after the last, meets none of that work; an empty pool
//! refills between a create and the next, as above (waiting for stillness then would starve
//! it under a steady stream of creates). Both waits end after 2 s however busy the host is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often a waiter looks again.
const QUIET_POLL: Duration = Duration::from_millis(5);
/// The longest a waiter waits before it goes on anyway, so a host that is never quiet
/// still gets its pool refilled and its trash emptied.
const QUIET_AT_MOST: Duration = Duration::from_secs(2);

/// How long after a caller's last create or removal work with stock in hand waits
/// ([`Activity::wait_still`]): longer than the gap between the commands of a script or of an
/// agent's burst.
pub const STILL: Duration = Duration::from_millis(250);

/// Creates and removals under way, and when a caller's last ended.
pub struct Activity {
    under_way: AtomicUsize,
    /// Microseconds from `epoch` to the end of a caller's last create or removal; 0: none yet.
    caller_ended: AtomicU64,
    epoch: Instant,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            under_way: AtomicUsize::new(0),
            caller_ended: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Activity {
    /// Mark a create or removal under way until the guard drops.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.mark(false)
    }

    /// [`Activity::busy`] for a caller's create or removal, whose end [`Activity::wait_still`]
    /// counts from.
    pub fn caller(self: &Arc<Self>) -> Busy {
        self.mark(true)
    }

    fn mark(self: &Arc<Self>, caller: bool) -> Busy {
        self.under_way.fetch_add(1, Ordering::SeqCst);
        Busy {
            activity: self.clone(),
            caller,
        }
    }

    /// Whether nothing is under way.
    pub fn quiet(&self) -> bool {
        self.under_way.load(Ordering::SeqCst) == 0
    }

    /// Wait (at most [`QUIET_AT_MOST`]) until nothing is under way.
    pub fn wait_quiet(&self) {
        self.wait_still(Duration::ZERO, &|| false);
    }

    /// Wait (at most [`QUIET_AT_MOST`]) until nothing is under way and no caller's create or
    /// removal has ended for `still`, or only until nothing is under way once `urgent()`.
    pub fn wait_still(&self, still: Duration, urgent: &dyn Fn() -> bool) {
        let until = Instant::now() + QUIET_AT_MOST;
        let done = || self.quiet() && (self.since_caller() >= still || urgent());
        while !done() && Instant::now() < until {
            std::thread::sleep(QUIET_POLL);
        }
    }

    /// Time since a caller's last create or removal ended (forever when none did).
    fn since_caller(&self) -> Duration {
        match self.caller_ended.load(Ordering::SeqCst) {
            0 => Duration::MAX,
            us => self
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_micros(us)),
        }
    }
}

/// A create or removal under way (from [`Activity::busy`] or [`Activity::caller`]).
pub struct Busy {
    activity: Arc<Activity>,
    caller: bool,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.activity;
        if self.caller {
            let now = u64::try_from(a.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
            a.caller_ended.store(now.max(1), Ordering::SeqCst);
        }
        a.under_way.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_only_when_nothing_is_under_way() {
        let a = Arc::new(Activity::default());
        assert!(a.quiet(), "nothing ever happened");
        let one = a.busy();
        let two = a.busy();
        assert!(!a.quiet());
        drop(one);
        assert!(!a.quiet(), "one is still under way");
        drop(two);
        assert!(a.quiet());
        let t = Instant::now();
        a.wait_quiet();
        assert!(
            t.elapsed() < QUIET_AT_MOST,
            "a quiet host is not waited for"
        );
    }

    #[test]
    fn a_waiter_goes_on_when_the_last_one_ends() {
        let a = Arc::new(Activity::default());
        let busy = a.busy();
        let waiter = {
            let a = a.clone();
            std::thread::spawn(move || {
                a.wait_quiet();
                Instant::now()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let ended = Instant::now();
        drop(busy);
        let went_on = waiter.join().unwrap();
        assert!(went_on >= ended, "the waiter waited for the create to end");
    }

    /// How long `wait_still(still, urgent)` waited after a caller's create or removal ended.
    fn waited_after_a_caller(a: &Arc<Activity>, still: Duration, urgent: bool) -> Duration {
        drop(a.caller());
        let ended = Instant::now();
        a.wait_still(still, &|| urgent);
        ended.elapsed()
    }

    #[test]
    fn stillness_counts_from_a_callers_last_end_only() {
        let a = Arc::new(Activity::default());
        let t = Instant::now();
        drop(a.busy());
        a.wait_still(Duration::from_secs(1), &|| false);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "background work's own creates are not a caller's"
        );
        let still = Duration::from_millis(100);
        assert!(waited_after_a_caller(&a, still, false) >= still);
        assert!(
            waited_after_a_caller(&a, Duration::from_secs(60), true) < Duration::from_secs(1),
            "when urgent, only what is under way is waited for"
        );
        let waited = waited_after_a_caller(&a, Duration::from_secs(60), false);
        assert!(
            waited >= QUIET_AT_MOST && waited < Duration::from_secs(30),
            "never more than {QUIET_AT_MOST:?}: {waited:?}"
        );
    }
}
