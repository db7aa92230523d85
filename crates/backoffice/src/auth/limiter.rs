//! Counting failed sign-ins, per account and per client address, over a sliding window.
//!
//! Rate-limit crates such as governor meter *every* request; what ASVS asks for is a cap on
//! *failures* (a manager who types the password right is never held back), with the wait until
//! the oldest failure leaves the window as Retry-After. That is this small sliding window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Above this many keys, expired ones are swept on the next failure, so probing with random
/// emails cannot grow memory without bound.
const SWEEP_ABOVE: usize = 10_000;

impl FailureLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when `key` has used up its failures in the window.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = failures.get_mut(key) else {
            return Ok(());
        };
        prune(times, now, self.window);
        if times.len() < self.max_failures {
            return Ok(());
        }
        let oldest = times[times.len() - self.max_failures];
        Err((oldest + self.window).saturating_duration_since(now))
    }

    /// Counts an attempt as a failure *before* it is checked, so that attempts sent at once
    /// cannot all pass the limit; [`FailureLimiter::forgive`] takes it back when it succeeds.
    /// `Err(wait)` when `key` has used up its failures in the window.
    pub fn begin(&self, key: &str, now: Instant) -> Result<(), Duration> {
        // One lock for the check and the count: two attempts at once cannot both slip through.
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let times = self.in_window(&mut failures, key, now);
        if times.len() >= self.max_failures {
            let oldest = times[times.len() - self.max_failures];
            return Err((oldest + self.window).saturating_duration_since(now));
        }
        times.push_back(now);
        Ok(())
    }

    /// `key`'s failures still in the window; keys with none are swept out once the map grows.
    fn in_window<'a>(
        &self,
        failures: &'a mut HashMap<String, VecDeque<Instant>>,
        key: &str,
        now: Instant,
    ) -> &'a mut VecDeque<Instant> {
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                prune(times, now, self.window);
                !times.is_empty()
            });
        }
        let times = failures.entry(key.to_owned()).or_default();
        prune(times, now, self.window);
        times
    }

    /// Takes back the attempt [`FailureLimiter::begin`] counted at `at`.
    pub fn forgive(&self, key: &str, at: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = failures.get_mut(key)
            && let Some(i) = times.iter().rposition(|t| *t == at)
        {
            times.remove(i);
        }
    }

    pub fn record_failure(&self, key: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let times = self.in_window(&mut failures, key, now);
        times.push_back(now);
        // Only the newest `max_failures` matter for the decision.
        while times.len() > self.max_failures {
            times.pop_front();
        }
    }

    pub fn reset(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_oldest_leaves_the_window() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(limiter.check("a", t0 + Duration::from_secs(i)).is_ok());
            limiter.record_failure("a", t0 + Duration::from_secs(i));
        }
        let wait = limiter
            .check("a", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(
            limiter.check("b", t0).is_ok(),
            "other keys are not affected"
        );
        assert!(limiter.check("a", t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn reset_forgets_failures() {
        let limiter = FailureLimiter::new(1, Duration::from_secs(60));
        let now = Instant::now();
        limiter.record_failure("a", now);
        assert!(limiter.check("a", now).is_err());
        limiter.reset("a");
        assert!(limiter.check("a", now).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_probing() {
        let limiter = FailureLimiter::new(5, Duration::from_millis(1));
        let t0 = Instant::now();
        for i in 0..(3 * SWEEP_ABOVE as u64) {
            limiter.record_failure(&format!("user{i}"), t0 + Duration::from_millis(i * 2));
        }
        let keys = limiter.failures.lock().unwrap().len();
        assert!(keys <= SWEEP_ABOVE + 1, "{keys} keys kept");
    }
}
