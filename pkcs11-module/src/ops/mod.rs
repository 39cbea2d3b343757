//! What the PKCS#11 functions do, in plain Rust: the C layer only copies arguments in
//! and results out.

pub mod create;
pub mod crypt;
pub mod digest;
pub mod keygen;
pub mod login;
pub mod objects;

use cryptoki_sys::CK_SESSION_HANDLE;
use tpmd_api::DaemonError;
use zeroize::Zeroizing;

use crate::daemon::CallError;
use crate::error::{Pkcs11Error, Result};
use crate::module::{lock, Module};
use crate::store::key::KeyEntry;

/// The error for a failed tpmd call; `decrypting` turns TPM errors into bad ciphertext.
pub fn daemon_error(e: CallError, decrypting: bool) -> Pkcs11Error {
    match e {
        CallError::Unreachable(m) => Pkcs11Error::Device(m),
        CallError::Daemon(d) => match d {
            DaemonError::AuthFailed(_) => Pkcs11Error::PinIncorrect,
            DaemonError::RateLimited(_) | DaemonError::Lockout(_) => Pkcs11Error::PinLocked,
            DaemonError::Tpm(_) if decrypting => Pkcs11Error::EncryptedDataInvalid,
            DaemonError::InvalidArgument(m) | DaemonError::Unsupported(m) => {
                Pkcs11Error::FunctionFailed(m)
            }
            other => Pkcs11Error::Device(other.message()),
        },
    }
}

impl Module {
    /// The auth value to send with a key: empty for keys without one, else the PIN.
    pub fn auth_for(&self, key: &KeyEntry) -> Result<Zeroizing<Vec<u8>>> {
        if key.empty_auth {
            return Ok(Zeroizing::new(Vec::new()));
        }
        lock(&self.pin).clone().ok_or(Pkcs11Error::UserNotLoggedIn)
    }

    /// Refuses writes in a read-only session.
    pub fn require_rw(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        match lock(&self.sessions).get(&h) {
            Some((true, _)) => Ok(()),
            Some((false, _)) => Err(Pkcs11Error::SessionReadOnly),
            None => Err(Pkcs11Error::SessionHandleInvalid),
        }
    }
}
