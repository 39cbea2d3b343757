//! C_SetPIN: a PIN is a key's auth value, so changing it is TPM2_ObjectChangeAuth through
//! tpmd (ChangeAuth), which returns the key file with the new auth value; the module
//! replaces the key file with it atomically (the old file stays until the new one is
//! complete).
//!
//! After C_SignInit or C_DecryptInit with a key that has its own PIN, C_SetPIN changes
//! that key's PIN (and ends the operation, whose key file is replaced). Otherwise it
//! changes the token PIN: every key known to take it, one after another.

use std::sync::Arc;

use cryptoki_sys::CK_SESSION_HANDLE;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::daemon_error;
use crate::error::{Pkcs11Error, Result};
use crate::module::{lock, Module};
use crate::store::files::write_atomic;
use crate::store::key::KeyEntry;

impl Module {
    /// The key of the session's operation when it has its own PIN.
    fn own_pin_operation_key(&self, h: CK_SESSION_HANDLE) -> Result<Option<Arc<KeyEntry>>> {
        let session = self.session(h)?;
        let s = lock(&session);
        let store = lock(&self.store);
        let own = |key: &Arc<KeyEntry>| !key.empty_auth && !store.shares_token_pin(key);
        let key = s
            .sign
            .as_ref()
            .map(|op| &op.key)
            .filter(|k| own(k))
            .or_else(|| s.decrypt.as_ref().map(|op| &op.key).filter(|k| own(k)));
        Ok(key.cloned())
    }

    /// Has tpmd change `key`'s auth value and puts the new key file in its place; returns
    /// the new file's digest.
    fn change_key_pin(&self, key: &KeyEntry, old: &[u8], new: &[u8]) -> Result<[u8; 32]> {
        let blob = Arc::new(key.blob.clone());
        let (old, new) = (
            Arc::new(Zeroizing::new(old.to_vec())),
            Arc::new(Zeroizing::new(new.to_vec())),
        );
        let file = self
            .daemon
            .call(move |p| {
                let (blob, old, new) = (blob.clone(), old.clone(), new.clone());
                async move { p.change_auth(&blob, &old, &new).await }
            })
            .map_err(|e| daemon_error(e, false))?;
        write_atomic(&key.path, &file).map_err(|e| {
            Pkcs11Error::FunctionFailed(format!(
                "the TPM changed the PIN, but {} cannot be replaced ({e}); the key still takes the old PIN",
                key.path.display()
            ))
        })?;
        Ok(Sha256::digest(&file).into())
    }

    pub fn set_pin(&self, h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
        self.require_rw(h)?;
        if new.is_empty() {
            // A key keeps the dictionary-attack protection it was made with; one with a
            // PIN cannot become one without.
            return Err(Pkcs11Error::PinLenRange);
        }
        if let Some(key) = self.own_pin_operation_key(h)? {
            let digest = self.change_key_pin(&key, old, new)?;
            let session = self.session(h)?;
            let mut s = lock(&session);
            s.sign = None;
            s.decrypt = None;
            drop(s);
            let token = lock(&self.pin).clone();
            if token.is_some_and(|t| bool::from(t.as_slice().ct_eq(new))) {
                lock(&self.store).token_pin.add(digest, None);
            }
            self.refresh();
            return Ok(());
        }
        self.set_token_pin(old, new)
    }

    fn set_token_pin(&self, old: &[u8], new: &[u8]) -> Result<()> {
        let _gate = lock(&self.login_gate);
        // Logged in, the token PIN is known: a wrong old PIN costs no try.
        if let Some(pin) = lock(&self.pin).as_ref() {
            if !bool::from(pin.as_slice().ct_eq(old)) {
                return Err(Pkcs11Error::PinIncorrect);
            }
        }
        self.refresh();
        let keys = {
            let store = lock(&self.store);
            let mut keys = store.token_pin_keys();
            if keys.is_empty() {
                keys.extend(store.token_pin_probe());
            }
            keys
        };
        let new_pin = || Zeroizing::new(new.to_vec());
        for (i, key) in keys.iter().enumerate() {
            match self.change_key_pin(key, old, new) {
                Ok(digest) => lock(&self.store).token_pin.add(digest, Some(key.digest)),
                Err(e) => {
                    if i > 0 {
                        // The PIN changed for some keys: they are the token's now; the
                        // rest keep the old PIN as their own.
                        let mut store = lock(&self.store);
                        for rest in &keys[i..] {
                            store.token_pin.remove(&rest.digest);
                        }
                        drop(store);
                        if self.logged_in() {
                            *lock(&self.pin) = Some(new_pin());
                        }
                        self.refresh();
                    }
                    return Err(e);
                }
            }
        }
        if self.logged_in() {
            *lock(&self.pin) = Some(new_pin());
        }
        self.refresh();
        Ok(())
    }
}
