//! The dictionary-attack (DA) budget: the TPM's DA counter is shared by every user, so
//! tpmd decides who may risk a wrong auth value, and keeps the counter below maxTries.
//!
//! It reads the TPM's DA state at start, after a TPM reset and after every failure, and
//! estimates the counter in between ([`counter`]), reading it again before a try whenever
//! the estimate is within the reserve. The policy ([`policy`]) gives each uid a share and
//! keeps a reserve for users without recent failures; per-uid records ([`records`])
//! persist in the state directory.
//!
//! Every check runs on the TPM thread inside the same job as the TPM command it guards,
//! and that thread runs one job at a time: check, try and accounting are one atomic
//! step, so parallel calls cannot overshoot.

pub mod counter;
pub mod policy;
pub mod records;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tpmd_api::dbus::{Counters, Info};
use tracing::{debug, error, warn};

use crate::backend::{Backend, TpmError, TpmResult};
use counter::{CounterModel, MonoMillis};
use policy::{decide, Limits, Verdict};
use records::{UidRecords, WallSecs, DEFAULT_FORGET_SECS};

/// The budget as the D-Bus side holds it; only jobs on the TPM thread lock it.
pub type SharedBudget = std::sync::Arc<std::sync::Mutex<DaBudget>>;

/// Locks the budget. A panic ends tpmd (crate::crash), so a poisoned lock is never
/// observed by a live process.
pub fn lock_budget(budget: &SharedBudget) -> std::sync::MutexGuard<'_, DaBudget> {
    budget.lock().unwrap_or_else(|p| p.into_inner())
}

/// Who is trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// Root or tpmd's own user: may use the reserve and has no per-uid share.
    pub privileged: bool,
}

/// What the budget did since start, for GetCounters.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    failures: u64,
    refused: u64,
    lockout_answers: u64,
}

pub struct DaBudget {
    counter: Option<CounterModel>,
    records: UidRecords,
    /// The backend's resets_recovered when the counter was last read.
    resets_seen: Option<u64>,
    origin: Instant,
    tally: Tally,
}

impl DaBudget {
    pub fn new(records: UidRecords) -> DaBudget {
        DaBudget {
            counter: None,
            records,
            resets_seen: None,
            origin: Instant::now(),
            tally: Tally::default(),
        }
    }

    /// Now, on the monotonic clock.
    fn mono(&self) -> MonoMillis {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn wall(ceil: bool) -> WallSecs {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        now.as_secs() + u64::from(ceil && now.subsec_nanos() > 0)
    }

    /// Reads the TPM's DA state; keeps the last estimate if the TPM cannot say.
    pub fn read(&mut self, backend: &mut dyn Backend) -> TpmResult<CounterModel> {
        self.resets_seen = backend.counters().resets_recovered;
        match backend.da_state() {
            Ok(state) => {
                let model = CounterModel::read(&state, self.mono());
                if self
                    .counter
                    .is_none_or(|old| old.in_lockout != model.in_lockout)
                {
                    debug!(?state, "TPM dictionary-attack state");
                }
                self.counter = Some(model);
                Ok(model)
            }
            Err(e) => {
                warn!(error = %e, "cannot read the TPM's dictionary-attack state");
                Err(e)
            }
        }
    }

    fn forget_secs(&self) -> u32 {
        self.counter
            .and_then(|c| c.recovery_time)
            .unwrap_or(DEFAULT_FORGET_SECS)
    }

    /// Runs `op`, a key operation with `key` and an auth value, under the budget.
    pub fn run<T>(
        &mut self,
        caller: Caller,
        backend: &mut dyn Backend,
        key: &[u8],
        op: impl FnOnce(&mut dyn Backend) -> TpmResult<T>,
    ) -> TpmResult<T> {
        if !backend.key_counts_auth_failures(key)? {
            // noDA: a wrong value costs the TPM nothing, so there is nothing to budget.
            return op(backend);
        }
        if let Err(refusal) = self.check(caller, backend) {
            self.tally.refused += 1;
            debug!(uid = caller.uid, "refused by the DA budget: {refusal}");
            return Err(refusal);
        }
        let result = op(backend);
        self.account(caller, backend, result)
    }

    fn check(&mut self, caller: Caller, backend: &mut dyn Backend) -> TpmResult<()> {
        let resets = backend.counters().resets_recovered;
        let mut model = match self.counter {
            Some(model) if self.resets_seen == resets => model,
            // First use, or the TPM was reset (an unorderly reset counts as a failure).
            _ => match self.read(backend) {
                Ok(model) => model,
                Err(TpmError::Unsupported(_)) => return self.check_blind(caller),
                Err(e) => return Err(e),
            },
        };
        if !model.counts() {
            return Ok(());
        }
        let limits = Limits::for_max_tries(model.max_tries);
        if model.in_lockout || limits.within_reserve(model.estimate(self.mono())) {
            // Near the limit, other users of the TPM and unseen resets matter: ask it.
            model = self.read(backend)?;
        }
        let now = self.mono();
        let wall = Self::wall(false);
        let own = self
            .records
            .outstanding(caller.uid, wall, self.forget_secs());
        let estimate = model.estimate(now);
        match decide(limits, estimate, model.in_lockout, own, caller.privileged) {
            Verdict::Allow => Ok(()),
            Verdict::InLockout => Err(TpmError::LockedOut(lockout_message(&model, now))),
            Verdict::OwnShareUsed => {
                let wait = self.records.get(caller.uid).map_or(1, |r| {
                    r.seconds_until_at_most(limits.share - 1, wall, self.forget_secs())
                });
                Err(TpmError::RateLimited(format!(
                    "too many wrong auth values from your user (uid {}); try again in {wait} seconds",
                    caller.uid
                )))
            }
            Verdict::CounterTooHigh { highest } => {
                let own_failures_count = own > 0 && !caller.privileged;
                Err(counter_too_high(
                    &model,
                    highest,
                    estimate,
                    own_failures_count,
                    now,
                ))
            }
        }
    }

    /// A TPM that reports no counts (a TPM 1.2 answering TPM_DA_INFO_LIMITED): tpmd
    /// cannot see the counter, so it holds every uid to one failure outstanding.
    fn check_blind(&mut self, caller: Caller) -> TpmResult<()> {
        let wall = Self::wall(false);
        let forget = self.forget_secs();
        match self.records.get(caller.uid) {
            Some(record) if !caller.privileged && record.outstanding(wall, forget) > 0 => {
                let wait = record.seconds_until_at_most(0, wall, forget);
                Err(TpmError::RateLimited(format!(
                    "too many wrong auth values from your user (uid {}); try again in {wait} seconds",
                    caller.uid
                )))
            }
            _ => Ok(()),
        }
    }

    fn account<T>(
        &mut self,
        caller: Caller,
        backend: &mut dyn Backend,
        result: TpmResult<T>,
    ) -> TpmResult<T> {
        match result {
            Err(TpmError::AuthFailed { .. }) => {
                self.tally.failures += 1;
                warn!(uid = caller.uid, "wrong key auth value");
                let forget = self.forget_secs();
                let now = self.mono();
                if let Some(model) = self.counter.as_mut() {
                    model.failed(now);
                }
                if let Err(e) = self.records.failed(caller.uid, Self::wall(true), forget) {
                    // The record stays in memory; only a restart would forget it.
                    error!("cannot save the DA budget records: {e}");
                }
                let _ = self.read(backend);
                Err(TpmError::AuthFailed {
                    lockout: self.tries_left_note(caller),
                })
            }
            Err(TpmError::Lockout { .. }) => {
                self.tally.lockout_answers += 1;
                error!(
                    uid = caller.uid,
                    "the TPM answered TPM_RC_LOCKOUT: something outside tpmd's budget counted failures"
                );
                let now = self.mono();
                match self.read(backend) {
                    Ok(model) => Err(TpmError::LockedOut(lockout_message(&model, now))),
                    Err(_) => Err(TpmError::LockedOut(
                        "the TPM is in dictionary-attack lockout (wrong auth values and unorderly TPM resets both count); root can clear it with `tpm-keyctl reset-lockout`".into(),
                    )),
                }
            }
            other => {
                if self.resets_seen != backend.counters().resets_recovered {
                    let _ = self.read(backend);
                }
                other
            }
        }
    }

    /// How many more wrong values the caller could send now, as a note for the error.
    fn tries_left_note(&self, caller: Caller) -> String {
        let Some(model) = self.counter else {
            return String::new();
        };
        if !model.counts() {
            return String::new();
        }
        let limits = Limits::for_max_tries(model.max_tries);
        let estimate = model.estimate(self.mono());
        let own = self
            .records
            .outstanding(caller.uid, Self::wall(false), self.forget_secs());
        let left = (0..=model.max_tries)
            .take_while(|k| {
                decide(limits, estimate + k, false, own + k, caller.privileged) == Verdict::Allow
            })
            .count();
        format!(
            "; {left} more wrong value{} allowed before tpmd makes you wait",
            if left == 1 { "" } else { "s" }
        )
    }

    /// GetInfo's DA fields, from a fresh reading.
    pub fn fill_info(&mut self, backend: &mut dyn Backend, info: &mut Info) {
        let Ok(model) = self.read(backend) else {
            return;
        };
        let now = self.mono();
        info.lockout = Some(model.in_lockout);
        info.da_failed_tries = Some(model.estimate(now));
        info.da_max_tries = Some(model.max_tries);
        info.da_recovery_time = model.recovery_time;
        info.da_lockout_recovery = model.lockout_recovery;
        info.lockout_ends_in = if model.in_lockout {
            model.lockout_ends_in(now)
        } else {
            None
        };
        info.da_healed_in = model.seconds_until_at_most(0, now);
        if let Some(counters) = info.counters.as_mut() {
            self.fill_counters(counters);
        }
    }

    pub fn fill_counters(&self, counters: &mut Counters) {
        counters.auth_failures = Some(self.tally.failures);
        counters.auth_refused = Some(self.tally.refused);
        counters.lockout_answers = Some(self.tally.lockout_answers);
    }
}

fn wait_text(wait: Option<u64>) -> String {
    match wait {
        Some(secs) => format!("try again in {} seconds", secs.max(1)),
        None => "try again later (this TPM does not say how fast it forgets failures)".into(),
    }
}

fn lockout_message(model: &CounterModel, now: MonoMillis) -> String {
    let when = match model.lockout_ends_in(now) {
        Some(secs) => format!("it lets auth values through again in at most {secs} seconds"),
        None => "this TPM does not say when it lets auth values through again".into(),
    };
    format!(
        "the TPM is in dictionary-attack lockout: {} of {} failed tries (wrong auth values and unorderly TPM resets both count); {when}, or root clears it with `tpm-keyctl reset-lockout --auth-file FILE`",
        model.estimate(now),
        model.max_tries
    )
}

/// The refusal when a failure would take the counter too high; `held_to_pool`: the
/// caller has recent failures of its own, so the reserve is not for it.
fn counter_too_high(
    model: &CounterModel,
    highest: u32,
    estimate: u32,
    held_to_pool: bool,
    now: MonoMillis,
) -> TpmError {
    if highest == 0 {
        return TpmError::RateLimited(format!(
            "the TPM locks out at its first failed auth value (maxTries {}), so tpmd does not risk one; give the key noDA or raise maxTries (tpm2_dictionarylockout --setup-parameters --max-tries)",
            model.max_tries
        ));
    }
    let wait = wait_text(model.seconds_until_at_most(highest - 1, now));
    if held_to_pool {
        TpmError::RateLimited(format!(
            "too many wrong auth values from your user and others recently: tpmd keeps the TPM's last tries for users without recent failures; {wait}"
        ))
    } else {
        TpmError::RateLimited(format!(
            "the TPM's dictionary-attack counter is at {estimate} of {} (wrong auth values and unorderly TPM resets both count), and one more failure would lock it for every user; {wait}",
            model.max_tries
        ))
    }
}
