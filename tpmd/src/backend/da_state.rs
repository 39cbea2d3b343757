//! A TPM's dictionary-attack (DA) state as the TPM itself reports it: TPM 2.0
//! TPM_PT_LOCKOUT_COUNTER, TPM_PT_MAX_AUTH_FAIL, TPM_PT_LOCKOUT_INTERVAL,
//! TPM_PT_LOCKOUT_RECOVERY and TPMA_PERMANENT.inLockout; on a TPM 1.2 what
//! TPM_CAP_DA_LOGIC returns.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaState {
    /// Failed authorizations the TPM counts now (failedTries; 1.2: currentCount).
    pub failed_tries: u32,
    /// The count at which the TPM locks out (maxTries; 1.2: thresholdCount).
    pub max_tries: u32,
    /// Seconds after which the TPM forgets one failure (recoveryTime; the timer restarts
    /// with every failure). `Some(0)` means DA protection is off. `None`: the TPM does not
    /// say (TPM 1.2, whose decay is vendor-specific).
    pub recovery_time: Option<u32>,
    /// Seconds before the lockout auth may be tried again after a failure with it
    /// (lockoutRecovery; TPM 2.0 only).
    pub lockout_recovery: Option<u32>,
    /// The TPM refuses DA-protected authorizations now.
    pub in_lockout: bool,
    /// Seconds until the lockout ends, when the TPM reports it (TPM 1.2
    /// actionDependValue; a TPM 2.0 reports no time remaining).
    pub lockout_ends_in: Option<u32>,
}
