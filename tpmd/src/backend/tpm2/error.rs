//! tss-esapi errors in terms of the backend's [`TpmError`].

pub use crate::backend::error::{TpmError, TpmResult};

use super::rc::ResponseCode;

/// What to do about a TPM 2.0 in lockout.
pub const LOCKOUT_ADVICE: &str =
    "wait for it to recover or reset it with `tpm2_dictionarylockout -c`";

impl TpmError {
    /// Classifies a failed tss-esapi call.
    pub fn from_tss(command: &'static str, error: tss_esapi::Error) -> TpmError {
        let Some(rc) = ResponseCode::of(&error) else {
            return TpmError::Stack {
                command,
                detail: error.to_string(),
            };
        };
        if rc.is_transport_failure() {
            return TpmError::Unavailable(format!(
                "{command} got no answer ({rc}); is the TPM or simulator still there?"
            ));
        }
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
            command,
            code: rc.0,
            detail: error.to_string(),
        }
    }

    /// The TPM 2.0 response code, when the failure came from the TPM.
    pub fn response_code(&self) -> Option<ResponseCode> {
        self.code().map(ResponseCode)
    }
}

/// Shorthand for mapping a tss-esapi result with the command's name.
pub trait TssResultExt<T> {
    fn tpm(self, command: &'static str) -> TpmResult<T>;
}

impl<T> TssResultExt<T> for Result<T, tss_esapi::Error> {
    fn tpm(self, command: &'static str) -> TpmResult<T> {
        self.map_err(|e| TpmError::from_tss(command, e))
    }
}
