//! Errors of the backend layer, whatever the TPM family: what went wrong, in terms a user
//! can act on. The service layer turns these into D-Bus errors in one place
//! (`service::errors`); each family turns its own TPM and stack errors into these.

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
    #[error("this key was wrapped for another TPM or another storage root key ({code:#x}); wrap the original key again on this machine")]
    WrongTpm { code: u32 },
    #[error("wrong auth value for this key{lockout}")]
    AuthFailed { lockout: String },
    /// The TPM answered TPM_RC_LOCKOUT (or a 1.2's defend-lock). It does not say why:
    /// wrong auth values and unorderly resets both count.
    #[error("the TPM is in dictionary-attack lockout; {advice}")]
    Lockout { advice: &'static str },
    /// The same, explained from the TPM's DA state (counter, recovery time).
    #[error("{0}")]
    LockedOut(String),
    /// Refused by tpmd's dictionary-attack budget before reaching the TPM.
    #[error("{0}")]
    RateLimited(String),
    /// The caller's queue on the TPM thread is full.
    #[error("{0}")]
    Busy(String),
    /// The key's policy is not satisfied (PCR values, no matching signed policy). Not an
    /// auth failure: the dictionary-attack budget does not count it.
    #[error("{0}")]
    PolicyFailed(String),
    #[error("cannot reach the TPM: {0}")]
    Unavailable(String),
    /// The TPM refused a command; `code` is the family's raw response code.
    #[error("TPM command {command} failed: {detail} ({code:#x})")]
    Command {
        command: &'static str,
        code: u32,
        detail: String,
    },
    #[error("TPM software stack error in {command}: {detail}")]
    Stack {
        command: &'static str,
        detail: String,
    },
}

impl TpmError {
    /// The TPM command that failed, when the TPM refused one.
    pub fn command_name(&self) -> Option<&'static str> {
        match self {
            TpmError::Command { command, .. } => Some(command),
            _ => None,
        }
    }

    /// The raw response code, when the failure came from the TPM.
    pub fn code(&self) -> Option<u32> {
        match self {
            TpmError::Command { code, .. } | TpmError::WrongTpm { code } => Some(*code),
            _ => None,
        }
    }
}

pub type TpmResult<T> = Result<T, TpmError>;
