//! Errors of the TPM layer: what went wrong, in terms a user can act on. The service
//! layer turns these into D-Bus errors in one place (`service::errors`).

use super::rc::ResponseCode;

#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    BadKeyFile(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("no storage root key at {handle:#010x}; create it with `tpm-keyctl srk create`")]
    NoParent { handle: u32 },
    #[error("this key was wrapped for another TPM or another storage root key ({rc}); wrap the original key again on this machine")]
    WrongTpm { rc: ResponseCode },
    #[error("wrong auth value for this key{lockout}")]
    AuthFailed { lockout: String },
    #[error("the TPM is in dictionary-attack lockout after too many wrong auth values; wait for it to recover or reset it with `tpm2_dictionarylockout -c`")]
    Lockout,
    #[error("cannot reach the TPM: {0}")]
    Unavailable(String),
    #[error("TPM command {command} failed: {detail} ({rc})")]
    Command {
        command: &'static str,
        rc: ResponseCode,
        detail: String,
    },
    #[error("TPM software stack error in {command}: {detail}")]
    Stack {
        command: &'static str,
        detail: String,
    },
}

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
            return TpmError::Lockout;
        }
        if rc.is_auth_failure() {
            return TpmError::AuthFailed {
                lockout: String::new(),
            };
        }
        TpmError::Command {
            command,
            rc,
            detail: error.to_string(),
        }
    }

    /// The TPM response code, when the failure came from the TPM.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            TpmError::Command { rc, .. } | TpmError::WrongTpm { rc } => Some(*rc),
            _ => None,
        }
    }
}

pub type TpmResult<T> = Result<T, TpmError>;

/// Shorthand for mapping a tss-esapi result with the command's name.
pub trait TssResultExt<T> {
    fn tpm(self, command: &'static str) -> TpmResult<T>;
}

impl<T> TssResultExt<T> for Result<T, tss_esapi::Error> {
    fn tpm(self, command: &'static str) -> TpmResult<T> {
        self.map_err(|e| TpmError::from_tss(command, e))
    }
}
