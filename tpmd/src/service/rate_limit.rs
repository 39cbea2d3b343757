//! Per-caller limit on failed key auth attempts, so one user cannot drive the TPM into
//! dictionary-attack lockout for everyone: after a few failures a caller must wait,
//! doubling each time, before its next attempt reaches the TPM.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_secs(2);
const LONGEST_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

#[derive(Debug, Default)]
pub struct AuthRateLimiter {
    callers: Mutex<HashMap<u32, Record>>,
}

impl AuthRateLimiter {
    fn wait_for(failures: u32) -> Duration {
        if failures < FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (failures - FREE_FAILURES).min(16);
        (FIRST_WAIT * 2u32.pow(doublings)).min(LONGEST_WAIT)
    }

    /// How long `uid` must still wait before trying a key auth again, if at all.
    pub fn check(&self, uid: u32, now: Instant) -> Option<Duration> {
        let callers = self.callers.lock().ok()?;
        let record = callers.get(&uid)?;
        let ready = record.last + Self::wait_for(record.failures);
        (ready > now).then(|| ready - now)
    }

    pub fn failed(&self, uid: u32, now: Instant) {
        if let Ok(mut callers) = self.callers.lock() {
            let record = callers.entry(uid).or_insert(Record {
                failures: 0,
                last: now,
            });
            record.failures += 1;
            record.last = now;
        }
    }

    pub fn succeeded(&self, uid: u32) {
        if let Ok(mut callers) = self.callers.lock() {
            callers.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_are_free_then_waits_double() {
        let limiter = AuthRateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            limiter.failed(1000, t0);
            assert_eq!(limiter.check(1000, t0), None);
        }
        limiter.failed(1000, t0);
        assert_eq!(limiter.check(1000, t0), Some(FIRST_WAIT));
        assert_eq!(limiter.check(1000, t0 + FIRST_WAIT), None);
        limiter.failed(1000, t0);
        assert_eq!(limiter.check(1000, t0), Some(FIRST_WAIT * 2));
        // Other callers are not affected.
        assert_eq!(limiter.check(1001, t0), None);
        limiter.succeeded(1000);
        assert_eq!(limiter.check(1000, t0), None);
    }

    #[test]
    fn the_wait_is_capped() {
        assert_eq!(AuthRateLimiter::wait_for(1000), LONGEST_WAIT);
    }
}
