//! Lock and unlock (ssh-add -x / -X): while locked the agent lists nothing and signs
//! nothing. The passphrase is kept only as a digest.
//!
//! Guessing is throttled for the agent as a whole, not per connection: after a wrong
//! passphrase no unlock attempt from any connection is even compared until a delay has
//! passed, and the delay doubles with each wrong one in a row (100 ms up to 30 s). The
//! check of the delay, the comparison and the update happen under one lock, so any
//! number of parallel connections get one comparison per delay between them. The
//! comparison takes the same time wherever the digests differ.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::agent::{lock_or_recover, Agent, Session};
use crate::error::AgentError;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(30);

fn passphrase_hash(passphrase: &str) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(Sha256::digest(passphrase.as_bytes()).into())
}

/// The delay after `failures` wrong passphrases in a row.
fn delay_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_DELAY * (1u32 << doublings)).min(MAX_DELAY)
}

/// Whether the agent is locked, and how unlocking has gone.
#[derive(Default)]
pub struct LockState {
    /// SHA-256 of the lock passphrase while locked.
    hash: Option<Zeroizing<[u8; 32]>>,
    /// Wrong passphrases in a row.
    failures: u32,
    /// No passphrase is compared before this.
    next_try: Option<Instant>,
}

/// What an unlock attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Unlocked,
    NotLocked,
    Wrong,
    TooSoon { wait: Duration },
}

impl LockState {
    pub fn is_locked(&self) -> bool {
        self.hash.is_some()
    }

    /// Locks with this digest; false if already locked.
    fn lock(&mut self, hash: Zeroizing<[u8; 32]>) -> bool {
        if self.hash.is_some() {
            return false;
        }
        self.hash = Some(hash);
        true
    }

    /// One attempt at `now`: the whole check, comparison and bookkeeping.
    fn attempt(&mut self, given: &[u8; 32], now: Instant) -> Attempt {
        let Some(want) = self.hash.as_ref() else {
            return Attempt::NotLocked;
        };
        if let Some(next) = self.next_try.filter(|next| now < *next) {
            return Attempt::TooSoon { wait: next - now };
        }
        if bool::from(want.ct_eq(given)) {
            *self = LockState::default();
            return Attempt::Unlocked;
        }
        self.failures = self.failures.saturating_add(1);
        self.next_try = Some(now + delay_after(self.failures));
        Attempt::Wrong
    }
}

impl Agent {
    pub(crate) async fn lock(
        &self,
        passphrase: String,
        frame: &[u8],
        session: &mut Session,
    ) -> Result<(), AgentError> {
        let passphrase = Zeroizing::new(passphrase);
        if !lock_or_recover(&self.locked).lock(passphrase_hash(&passphrase)) {
            return Err(AgentError::BadRequest("the agent is already locked".into()));
        }
        lock_or_recover(&self.auth_cache).clear();
        info!("agent locked by {}", session.describe());
        if let Some(upstream) = session.upstream.as_mut() {
            if let Err(e) = upstream.request(frame, "refused to lock").await {
                warn!("locking: {e}");
            }
        }
        Ok(())
    }

    pub(crate) async fn unlock(
        &self,
        passphrase: String,
        frame: &[u8],
        session: &mut Session,
    ) -> Result<(), AgentError> {
        let passphrase = Zeroizing::new(passphrase);
        let hash = passphrase_hash(&passphrase);
        let (attempt, failures) = {
            let mut state = lock_or_recover(&self.locked);
            let attempt = state.attempt(&hash, Instant::now());
            (attempt, state.failures)
        };
        match attempt {
            Attempt::Unlocked => {}
            Attempt::NotLocked => {
                return Err(AgentError::BadRequest("the agent is not locked".into()))
            }
            Attempt::Wrong => {
                return Err(AgentError::BadRequest(format!(
                    "wrong passphrase to unlock the agent ({failures} in a row; the next is checked after {} ms)",
                    delay_after(failures).as_millis()
                )))
            }
            Attempt::TooSoon { wait } => {
                return Err(AgentError::UnlockThrottled {
                    failures,
                    wait_ms: wait.as_millis().max(1),
                })
            }
        }
        info!("agent unlocked by {}", session.describe());
        if let Some(upstream) = session.upstream.as_mut() {
            if let Err(e) = upstream.request(frame, "refused to unlock").await {
                warn!("unlocking: {e}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked_with(passphrase: &str) -> LockState {
        let mut state = LockState::default();
        assert!(state.lock(passphrase_hash(passphrase)));
        state
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        assert_eq!(delay_after(1), Duration::from_millis(100));
        assert_eq!(delay_after(2), Duration::from_millis(200));
        assert_eq!(delay_after(5), Duration::from_millis(1600));
        assert_eq!(delay_after(10), MAX_DELAY);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn one_comparison_per_delay_however_many_connections_try() {
        let mut state = locked_with("sesame");
        let t0 = Instant::now();
        assert_eq!(state.attempt(&passphrase_hash("guess"), t0), Attempt::Wrong);
        // Sixteen connections at once, the right passphrase among them: none is
        // compared before the delay is over.
        for i in 0..16u64 {
            let guess = if i == 7 { "sesame" } else { "guess" };
            let at = t0 + Duration::from_millis(i * 5);
            assert!(matches!(
                state.attempt(&passphrase_hash(guess), at),
                Attempt::TooSoon { .. }
            ));
        }
        assert!(state.is_locked());
        assert_eq!(state.failures, 1);
        // After it, one more wrong guess doubles the delay.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(state.attempt(&passphrase_hash("guess"), t1), Attempt::Wrong);
        assert_eq!(
            state.attempt(&passphrase_hash("sesame"), t1 + Duration::from_millis(150)),
            Attempt::TooSoon {
                wait: Duration::from_millis(50)
            }
        );
        // The right passphrase once the window has passed unlocks and forgets the failures.
        let t2 = t1 + Duration::from_millis(200);
        assert_eq!(
            state.attempt(&passphrase_hash("sesame"), t2),
            Attempt::Unlocked
        );
        assert!(!state.is_locked());
        assert_eq!(state.failures, 0);
        assert_eq!(
            state.attempt(&passphrase_hash("sesame"), t2),
            Attempt::NotLocked
        );
        // Locking again starts with a clean slate.
        assert!(state.lock(passphrase_hash("again")));
        assert!(!state.lock(passphrase_hash("twice")));
        assert_eq!(
            state.attempt(&passphrase_hash("again"), t2),
            Attempt::Unlocked
        );
    }
}
