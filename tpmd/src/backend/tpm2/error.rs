//! Failures of our TPM 2.0 command path in terms of the backend's [`TpmError`]: the one
//! place where response codes become what a user reads.

pub use crate::backend::error::{TpmError, TpmResult};

use tpmd_tpm2::session::SessionError;
use tpmd_tpm2::tpm::TpmCallError;
use tpmd_tpm2::wire::{cc, ResponseCode};

/// What to do about a TPM 2.0 in lockout.
pub const LOCKOUT_ADVICE: &str =
    "wait for it to recover or, as root, reset it with `tpm-keyctl reset-lockout`";

impl From<TpmCallError> for TpmError {
    fn from(error: TpmCallError) -> TpmError {
        match error {
            TpmCallError::Transport(e) => TpmError::Unavailable(e.to_string()),
            TpmCallError::Wire(e) => TpmError::Stack {
                command: "response",
                detail: e.to_string(),
            },
            TpmCallError::Tpm { command, rc } => TpmError::from_rc(command, rc),
            TpmCallError::Session(e) => e.into(),
        }
    }
}

impl From<SessionError> for TpmError {
    fn from(error: SessionError) -> TpmError {
        TpmError::Stack {
            command: "session",
            detail: error.to_string(),
        }
    }
}

impl TpmError {
    /// Classifies a TPM 2.0 response code of `command`.
    pub fn from_rc(command: u32, rc: ResponseCode) -> TpmError {
        if rc.is_lockout() {
            return TpmError::Lockout {
                advice: LOCKOUT_ADVICE,
            };
        }
        if rc.is_auth_failure() {
            return TpmError::AuthFailed {
                lockout: String::new(),
            };
        }
        TpmError::Command {
            command: cc::static_name(command),
            code: rc.0,
            detail: describe(rc),
        }
    }

    /// The TPM 2.0 response code, when the failure came from the TPM.
    pub fn response_code(&self) -> Option<ResponseCode> {
        self.code().map(ResponseCode)
    }
}

/// A few words on the response codes a user may meet.
fn describe(rc: ResponseCode) -> String {
    if rc.is_object_memory() {
        "the TPM has no free object slot".into()
    } else if rc.is_retryable() {
        "the TPM stayed busy".into()
    } else if rc.is_handle() {
        "a handle the command names is not loaded".into()
    } else if rc.is_integrity() {
        "an integrity check failed (a saved context from before a TPM reset, or a blob for another TPM)".into()
    } else if rc.is_unsupported() {
        "the TPM does not support this key size, curve or scheme".into()
    } else if rc.is_initialize() {
        "the TPM was reset and not started again".into()
    } else {
        "see TPM 2.0 Part 2, TPM_RC".into()
    }
}
