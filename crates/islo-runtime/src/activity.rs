//! Creates and removals under way, for background work to keep out of their way: the OCI
//! back end's disk pool and trash, and islod's pool of sandboxes started ahead.
//!
//! A create's ext4 mount and a removal's unmount write their disk's superblock through to
//! the host file system (the loop device turns the write's FUA into an `fsync` of the image),
//! and the host commits one journal for every such write. Background work that writes out
//! or frees files at the same moment (the disk pool's refill, the trash) made that commit
//! wait for its I/O too: a create whose mount met a refill's write-out took ~9 ms to mount
//! instead of ~3 here. Such work waits until none is under way ([`Activity::wait_quiet`]):
//! between a create and the next one, not during either. (Waiting for a longer quiet
//! moment would starve the pool under a steady stream of creates.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often a waiter looks again.
const QUIET_POLL: Duration = Duration::from_millis(5);
/// The longest a waiter waits before it goes on anyway, so a host that is never quiet
/// still gets its pool refilled and its trash emptied.
const QUIET_AT_MOST: Duration = Duration::from_secs(2);

/// Creates and removals under way.
#[derive(Default)]
pub struct Activity {
    under_way: AtomicUsize,
}

impl Activity {
    /// Mark a create or removal under way until the guard drops.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.under_way.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Whether nothing is under way.
    pub fn quiet(&self) -> bool {
        self.under_way.load(Ordering::SeqCst) == 0
    }

    /// Wait (at most [`QUIET_AT_MOST`]) until nothing is under way.
    pub fn wait_quiet(&self) {
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
        self.0.under_way.fetch_sub(1, Ordering::SeqCst);
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
}
