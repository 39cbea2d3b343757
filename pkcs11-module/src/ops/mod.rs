//! What the PKCS#11 functions do, in plain Rust: the C layer only copies arguments in
//! and results out.

pub mod create;
pub mod decrypt;
pub mod digest;
pub mod encrypt;
pub mod keygen;
pub mod login;
pub mod objects;
pub mod pin;
pub mod random;
pub mod sign;
pub mod verify;

use std::sync::Arc;

use cryptoki_sys::{CK_OBJECT_HANDLE, CK_SESSION_HANDLE};
use tpmd_api::DaemonError;
use zeroize::Zeroizing;

use crate::daemon::CallError;
use crate::error::{Pkcs11Error, Result};
use crate::module::{lock, Module};
use crate::store::key::KeyEntry;
use crate::store::{Object, ObjectKind};

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
    /// The auth value to send with a key: empty for keys without one; the PIN of the
    /// operation's context-specific login; else the token PIN, for keys that share it.
    pub fn auth_for(
        &self,
        key: &KeyEntry,
        context_pin: Option<&Zeroizing<Vec<u8>>>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if key.empty_auth {
            return Ok(Zeroizing::new(Vec::new()));
        }
        if let Some(pin) = context_pin {
            return Ok(pin.clone());
        }
        if !lock(&self.store).shares_token_pin(key) {
            return Err(Pkcs11Error::UserNotLoggedIn);
        }
        lock(&self.pin).clone().ok_or(Pkcs11Error::UserNotLoggedIn)
    }

    /// The key object behind `handle`, if the caller may see it.
    fn visible_key(&self, handle: CK_OBJECT_HANDLE) -> Result<Object> {
        self.visible_object(handle)
            .map_err(|_| Pkcs11Error::KeyHandleInvalid)
    }

    /// The private key behind `handle`, if the caller may use it.
    fn private_key(&self, handle: CK_OBJECT_HANDLE) -> Result<Arc<KeyEntry>> {
        let obj = self.visible_key(handle)?;
        if obj.kind != ObjectKind::Private {
            return Err(Pkcs11Error::KeyTypeInconsistent);
        }
        obj.key().cloned().ok_or(Pkcs11Error::KeyHandleInvalid)
    }

    /// The key behind a public-key (or private-key) object, for the operations done
    /// with the public half.
    fn public_half(&self, handle: CK_OBJECT_HANDLE) -> Result<Arc<KeyEntry>> {
        let obj = self.visible_key(handle)?;
        obj.key().cloned().ok_or(Pkcs11Error::KeyHandleInvalid)
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
