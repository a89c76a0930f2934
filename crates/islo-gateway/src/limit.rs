//! Rate limits per sandbox per rule: at most `rpm` requests in any 60 seconds (a sliding
//! window). A refused request says when the oldest one leaves the window (`Retry-After`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Every (sandbox, rule) window.
#[derive(Debug, Default)]
pub struct Limiter {
    windows: Mutex<HashMap<(String, String), VecDeque<Instant>>>,
}

impl Limiter {
    /// Count a request of `sandbox` under `rule` at `now`; `Err(wait)` when over `rpm`.
    pub fn check(&self, sandbox: &str, rule: &str, rpm: u32, now: Instant) -> Result<(), Duration> {
        let Ok(mut all) = self.windows.lock() else {
            return Ok(());
        };
        let w = all
            .entry((sandbox.to_string(), rule.to_string()))
            .or_default();
        while w.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            w.pop_front();
        }
        if w.len() >= rpm as usize {
            let oldest = w.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        w.push_back(now);
        Ok(())
    }

    /// Forget a sandbox's windows (it was deleted).
    pub fn forget(&self, sandbox: &str) {
        if let Ok(mut all) = self.windows.lock() {
            all.retain(|(s, _), _| s != sandbox);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_per_minute_per_sandbox_per_rule() {
        let l = Limiter::default();
        let t0 = Instant::now();
        assert!(l.check("a", "r", 2, t0).is_ok());
        assert!(l.check("a", "r", 2, t0 + Duration::from_secs(1)).is_ok());
        let wait = l
            .check("a", "r", 2, t0 + Duration::from_secs(2))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(58));
        // Other sandboxes and other rules have their own windows.
        assert!(l.check("b", "r", 2, t0 + Duration::from_secs(2)).is_ok());
        assert!(l.check("a", "s", 2, t0 + Duration::from_secs(2)).is_ok());
        // The window slides.
        assert!(l.check("a", "r", 2, t0 + Duration::from_secs(60)).is_ok());
        l.forget("a");
        assert!(l.check("a", "r", 2, t0 + Duration::from_secs(61)).is_ok());
    }
}
