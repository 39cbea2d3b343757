//! Who may risk a wrong auth value now. Pure: the numbers in, a verdict out.
//!
//! With maxTries M the TPM locks out when its counter reaches M, so tpmd lets the counter
//! reach at most `ceiling` = M - 1. Of that, the top `reserve` = max(1, M / 4) tries are
//! only for callers without recent failures of their own (and for privileged callers), and
//! each unprivileged uid may have at most `share` = max(1, ceil((ceiling - reserve) / 2))
//! failures of its own outstanding. A uid's failures are forgotten at the TPM's own rate,
//! one per recoveryTime after its last failure; a success forgets nothing.
//!
//! So one uid alone can push the counter to `share` and no further; all uids with recent
//! failures together to `ceiling - reserve`; and a user who has not failed lately can
//! still try while the counter is below `ceiling`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub ceiling: u32,
    pub reserve: u32,
    pub share: u32,
}

impl Limits {
    pub fn for_max_tries(max_tries: u32) -> Limits {
        let ceiling = max_tries.saturating_sub(1);
        let reserve = (max_tries / 4).max(1).min(ceiling);
        let share = (ceiling - reserve).div_ceil(2).max(1);
        Limits {
            ceiling,
            reserve,
            share,
        }
    }

    /// The highest counter a failure by this caller may leave behind.
    pub fn highest_after_failure(&self, own_failures: u32, privileged: bool) -> u32 {
        if own_failures > 0 && !privileged {
            self.ceiling - self.reserve
        } else {
            self.ceiling
        }
    }

    /// Whether the counter is close enough to the limit that tpmd should read it from the
    /// TPM before a try instead of trusting its estimate.
    pub fn within_reserve(&self, estimate: u32) -> bool {
        estimate.saturating_add(1) > self.ceiling - self.reserve
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try: a failure would still leave the counter within bounds.
    Allow,
    /// The TPM says it is in lockout.
    InLockout,
    /// This uid has used its share.
    OwnShareUsed,
    /// A failure would take the counter past what this caller may use (`highest`).
    CounterTooHigh { highest: u32 },
}

/// The verdict for one try by a caller with `own_failures` outstanding, with the TPM's
/// counter estimated at `estimate`.
pub fn decide(
    limits: Limits,
    estimate: u32,
    in_lockout: bool,
    own_failures: u32,
    privileged: bool,
) -> Verdict {
    if in_lockout {
        return Verdict::InLockout;
    }
    if !privileged && own_failures >= limits.share {
        return Verdict::OwnShareUsed;
    }
    let highest = limits.highest_after_failure(own_failures, privileged);
    if estimate.saturating_add(1) > highest {
        return Verdict::CounterTooHigh { highest };
    }
    Verdict::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_for_common_max_tries() {
        // swtpm's default, the tests' 5, Windows' 32.
        let l = |m| Limits::for_max_tries(m);
        assert_eq!(
            l(3),
            Limits {
                ceiling: 2,
                reserve: 1,
                share: 1
            }
        );
        assert_eq!(
            l(5),
            Limits {
                ceiling: 4,
                reserve: 1,
                share: 2
            }
        );
        assert_eq!(
            l(32),
            Limits {
                ceiling: 31,
                reserve: 8,
                share: 12
            }
        );
        // A TPM that allows no failure at all leaves nothing to risk.
        assert_eq!(l(1).ceiling, 0);
        assert_eq!(l(0).ceiling, 0);
    }

    /// Simulates callers that only ever send wrong values, in any interleaving: the counter
    /// never reaches maxTries, one uid never passes its share, and a uid without failures
    /// can always try while anyone could.
    #[test]
    fn no_interleaving_of_failures_reaches_lockout() {
        for max_tries in 1..=40 {
            let limits = Limits::for_max_tries(max_tries);
            for uids in 1..=5usize {
                let mut own = vec![0u32; uids];
                let mut counter = 0u32;
                // Round robin, then one uid hammering, then the others.
                let order = (0..200).map(|i| if i < 100 { i % uids } else { 0 });
                for uid in order {
                    if decide(limits, counter, false, own[uid], false) == Verdict::Allow {
                        counter += 1;
                        own[uid] += 1;
                    }
                    assert!(counter < max_tries.max(1), "m={max_tries} uids={uids}");
                    assert!(own[uid] <= limits.share);
                }
                assert!(counter <= limits.ceiling);
            }
        }
    }

    #[test]
    fn a_user_without_failures_may_use_the_reserve() {
        let limits = Limits::for_max_tries(5);
        // The pool (3) is used up by others.
        assert_eq!(
            decide(limits, 3, false, 1, false),
            Verdict::CounterTooHigh { highest: 3 }
        );
        assert_eq!(decide(limits, 3, false, 0, false), Verdict::Allow);
        assert_eq!(
            decide(limits, 4, false, 0, false),
            Verdict::CounterTooHigh { highest: 4 }
        );
        // Root is not held to a share, only to the ceiling.
        assert_eq!(decide(limits, 3, false, 3, true), Verdict::Allow);
        assert_eq!(decide(limits, 1, false, 2, false), Verdict::OwnShareUsed);
        assert_eq!(decide(limits, 0, true, 0, true), Verdict::InLockout);
    }

    #[test]
    fn the_estimate_is_checked_against_the_tpm_near_the_limit() {
        let limits = Limits::for_max_tries(5);
        assert!(!limits.within_reserve(2));
        assert!(limits.within_reserve(3));
    }
}
