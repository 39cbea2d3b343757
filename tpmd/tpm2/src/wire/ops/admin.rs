//! Startup and the dictionary-attack commands.

use tpmd_api::marshal::{put_u16, put_u32};

use crate::wire::{cc, handle, Command};

pub const SU_CLEAR: u16 = 0;

pub fn startup(startup_type: u16) -> Command {
    let mut cmd = Command::new(cc::STARTUP, &[], 0, 0);
    put_u16(&mut cmd.params, startup_type);
    cmd
}

/// TPM2_DictionaryAttackLockReset: needs the lockout hierarchy's authorization.
pub fn dictionary_attack_lock_reset() -> Command {
    Command::new(cc::DICTIONARY_ATTACK_LOCK_RESET, &[handle::LOCKOUT], 1, 0)
}

/// TPM2_DictionaryAttackParameters: maxTries, recoveryTime and lockoutRecovery (s).
pub fn dictionary_attack_parameters(
    max_tries: u32,
    recovery_time: u32,
    lockout_recovery: u32,
) -> Command {
    let mut cmd = Command::new(cc::DICTIONARY_ATTACK_PARAMETERS, &[handle::LOCKOUT], 1, 0);
    put_u32(&mut cmd.params, max_tries);
    put_u32(&mut cmd.params, recovery_time);
    put_u32(&mut cmd.params, lockout_recovery);
    cmd
}
