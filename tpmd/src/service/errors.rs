//! The one place where TPM-layer errors become D-Bus errors.

use tpmd_api::DaemonError;

use crate::backend::TpmError;

impl From<TpmError> for DaemonError {
    fn from(error: TpmError) -> DaemonError {
        let message = error.to_string();
        match error {
            TpmError::InvalidArgument(_) => DaemonError::InvalidArgument(message),
            TpmError::BadKeyFile(_) => DaemonError::BadKeyFile(message),
            TpmError::Unsupported(_) => DaemonError::Unsupported(message),
            TpmError::NoParent { .. } => DaemonError::NoSrk(message),
            TpmError::WrongTpm { .. } => DaemonError::WrongTpm(message),
            TpmError::AuthFailed { .. } => DaemonError::AuthFailed(message),
            TpmError::Lockout { .. } | TpmError::LockedOut(_) => DaemonError::Lockout(message),
            TpmError::RateLimited(_) => DaemonError::RateLimited(message),
            TpmError::Busy(_) => DaemonError::Busy(message),
            TpmError::Unavailable(_) => DaemonError::TpmUnavailable(message),
            TpmError::PolicyFailed(_) => DaemonError::PolicyFailed(message),
            TpmError::Command { .. } | TpmError::Stack { .. } => DaemonError::Tpm(message),
        }
    }
}
