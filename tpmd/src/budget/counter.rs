//! tpmd's estimate of the TPM's failed-tries counter between readings, so that a
//! signature costs no extra TPM command.
//!
//! The TPM forgets one failure every recoveryTime seconds, and every new failure restarts
//! that timer (TCG reference code, DARegisterFailure/DASelfHeal). Counting decays from
//! the moment of our own reading or failure, which is never earlier than the TPM's
//! timer start, gives an estimate that is never below the real counter, except for
//! failures tpmd does not see: other users of tpmrm0 and unorderly resets. Those are
//! what the reserve is for, and why the budget reads the counter again near its limit.

use crate::backend::DaState;

/// Milliseconds on a monotonic clock.
pub type MonoMillis = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterModel {
    pub max_tries: u32,
    /// `None`: the TPM does not say how fast it forgets (TPM 1.2); assume it does not.
    pub recovery_time: Option<u32>,
    pub lockout_recovery: Option<u32>,
    /// What the TPM said at the last reading.
    pub in_lockout: bool,
    pub lockout_ends_in: Option<u32>,
    count: u32,
    since: MonoMillis,
}

impl CounterModel {
    pub fn read(state: &DaState, now: MonoMillis) -> CounterModel {
        CounterModel {
            max_tries: state.max_tries,
            recovery_time: state.recovery_time,
            lockout_recovery: state.lockout_recovery,
            in_lockout: state.in_lockout,
            lockout_ends_in: state.lockout_ends_in,
            count: state.failed_tries,
            since: now,
        }
    }

    /// Whether the TPM counts failures at all (recoveryTime 0 turns DA protection off).
    pub fn counts(&self) -> bool {
        self.recovery_time != Some(0)
    }

    /// The highest the counter can be now, as far as tpmd saw.
    pub fn estimate(&self, now: MonoMillis) -> u32 {
        match self.recovery_time {
            Some(0) => 0,
            Some(r) => {
                let forgotten = now.saturating_sub(self.since) / (u64::from(r) * 1000);
                self.count
                    .saturating_sub(u32::try_from(forgotten).unwrap_or(u32::MAX))
            }
            None => self.count,
        }
    }

    /// A failure tpmd caused (or saw) now.
    pub fn failed(&mut self, now: MonoMillis) {
        if self.counts() {
            self.count = self.estimate(now).saturating_add(1);
            self.since = now;
        }
    }

    /// Seconds until the estimate is at most `level`; `None` if the TPM does not say how
    /// fast it forgets.
    pub fn seconds_until_at_most(&self, level: u32, now: MonoMillis) -> Option<u64> {
        let current = self.estimate(now);
        if current <= level {
            return Some(0);
        }
        let r = u64::from(self.recovery_time?) * 1000;
        let due = self.since + u64::from(self.count - level) * r;
        Some(due.saturating_sub(now).div_ceil(1000).max(1))
    }

    /// Seconds until the TPM leaves lockout, at most: a TPM 1.2 may say; else from
    /// recoveryTime.
    pub fn lockout_ends_in(&self, now: MonoMillis) -> Option<u64> {
        if let Some(secs) = self.lockout_ends_in {
            return Some(u64::from(secs));
        }
        self.seconds_until_at_most(self.max_tries.saturating_sub(1), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(failed: u32, max: u32, recovery: Option<u32>) -> DaState {
        DaState {
            failed_tries: failed,
            max_tries: max,
            recovery_time: recovery,
            lockout_recovery: Some(1000),
            in_lockout: failed >= max,
            lockout_ends_in: None,
        }
    }

    #[test]
    fn forgets_one_failure_per_recovery_time_after_the_last_failure() {
        let s = |secs: u64| secs * 1000;
        let mut m = CounterModel::read(&state(2, 5, Some(600)), s(1000));
        assert_eq!(m.estimate(s(1600) - 1), 2);
        assert_eq!(m.estimate(s(1600)), 1);
        // A failure restarts the TPM's timer: the next decrement is a full period later.
        m.failed(s(1900));
        assert_eq!(m.estimate(s(1900)), 2);
        assert_eq!(m.estimate(s(2500) - 1), 2);
        assert_eq!(m.estimate(s(2500)), 1);
        assert_eq!(m.estimate(s(99_999)), 0);
        assert_eq!(m.seconds_until_at_most(0, s(1900)), Some(1200));
        assert_eq!(m.seconds_until_at_most(0, s(1900) + 1), Some(1200));
        assert_eq!(m.seconds_until_at_most(2, s(1900)), Some(0));
    }

    #[test]
    fn a_failure_after_a_quiet_time_starts_from_zero() {
        let mut m = CounterModel::read(&state(0, 5, Some(600)), 0);
        m.failed(10_000_000);
        assert_eq!(m.estimate(10_000_000), 1);
    }

    #[test]
    fn recovery_time_zero_counts_nothing_and_unknown_never_decays() {
        let mut off = CounterModel::read(&state(3, 5, Some(0)), 0);
        off.failed(1);
        assert_eq!(off.estimate(1), 0);
        assert!(!off.counts());
        let mut tpm12 = CounterModel::read(&state(1, 10, None), 0);
        tpm12.failed(5_000);
        assert_eq!(tpm12.estimate(1_000_000_000), 2);
        assert_eq!(tpm12.seconds_until_at_most(1, 5_000), None);
    }

    #[test]
    fn lockout_ends_when_the_counter_is_back_below_max_tries() {
        let m = CounterModel::read(&state(5, 5, Some(600)), 100_000);
        assert_eq!(m.lockout_ends_in(100_000), Some(600));
        assert_eq!(m.lockout_ends_in(400_000), Some(300));
        assert_eq!(m.lockout_ends_in(700_000), Some(0));
    }
}
