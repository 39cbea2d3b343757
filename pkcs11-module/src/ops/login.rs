//! C_Login / C_Logout: the PIN is the auth value of the keys that have one.
//!
//! A PIN is checked before anyone can use it: C_Login signs once with a key that takes
//! the token PIN, presenting it through tpmd, and only on success stores it, which is
//! what makes the application logged in. Until then other threads see no PIN and get
//! CKR_USER_NOT_LOGGED_IN, so an unverified PIN never reaches the TPM from a C_Sign and
//! never burns a second dictionary-attack try. The check is an ordinary Sign through
//! tpmd, so a wrong PIN counts against the caller's budget there like any wrong auth
//! value.
//!
//! A key whose auth value is not known to be the token PIN has its own
//! (CKA_ALWAYS_AUTHENTICATE): after C_SignInit or C_DecryptInit the application gives
//! it with C_Login(CKU_CONTEXT_SPECIFIC), checked the same way, for that one operation.

use std::sync::Arc;

use cryptoki_sys::{CKU_CONTEXT_SPECIFIC, CKU_USER, CK_SESSION_HANDLE, CK_USER_TYPE};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{Hash, SignMech};
use crate::module::{lock, Module};
use crate::store::key::{KeyEntry, PublicParts};

/// Which operation of a session a context-specific login is for.
#[derive(Clone, Copy)]
enum Pending {
    Sign,
    Decrypt,
}

impl Module {
    pub fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        match user {
            CKU_USER => self.user_login(pin),
            CKU_CONTEXT_SPECIFIC => self.context_login(h, pin),
            _ => Err(Pkcs11Error::UserTypeInvalid),
        }
    }

    /// Presents `pin` to the TPM with `key` once (a signature of zeros), so that a
    /// wrong one fails here and counts in tpmd like any wrong auth value.
    fn check_pin(&self, key: &KeyEntry, pin: &Zeroizing<Vec<u8>>) -> Result<()> {
        let mech = match key.parts {
            PublicParts::Rsa { .. } => SignMech::RsaPkcsHash(Hash::Sha256),
            PublicParts::Ec { .. } => SignMech::EcdsaHash(Hash::Sha256),
        };
        self.sign_with_auth(key, mech, &[0u8; 32], pin.clone())
            .map(|_| ())
    }

    fn user_login(&self, pin: &[u8]) -> Result<()> {
        // One check at a time: a second C_Login waits, then finds the user logged in.
        let _gate = lock(&self.login_gate);
        if self.logged_in() {
            return Err(Pkcs11Error::UserAlreadyLoggedIn);
        }
        self.refresh();
        let probe = lock(&self.store).token_pin_probe();
        let pin = Zeroizing::new(pin.to_vec());
        if let Some(key) = probe {
            self.check_pin(&key, &pin)?;
            // The key it was checked against takes the token PIN from now on.
            lock(&self.store).token_pin.add(key.digest, None);
        }
        // Without a key that needs it, there is nothing to check the PIN against: it
        // becomes the auth value of the keys created from now on.
        *lock(&self.pin) = Some(pin);
        Ok(())
    }

    /// The key of the session's operation that waits for its own PIN, if any.
    fn pending_key(&self, h: CK_SESSION_HANDLE) -> Result<Option<(Pending, Arc<KeyEntry>)>> {
        let session = self.session(h)?;
        let s = lock(&session);
        let store = lock(&self.store);
        let waits = |key: &KeyEntry, pin: &Option<Zeroizing<Vec<u8>>>| {
            !key.empty_auth && !store.shares_token_pin(key) && pin.is_none()
        };
        if let Some(op) = s.sign.as_ref().filter(|op| waits(&op.key, &op.context_pin)) {
            return Ok(Some((Pending::Sign, op.key.clone())));
        }
        if let Some(op) = s
            .decrypt
            .as_ref()
            .filter(|op| waits(&op.key, &op.context_pin))
        {
            return Ok(Some((Pending::Decrypt, op.key.clone())));
        }
        if s.sign.is_none() && s.decrypt.is_none() {
            return Err(Pkcs11Error::OperationNotInitialized);
        }
        Ok(None)
    }

    fn context_login(&self, h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
        if !self.logged_in() {
            return Err(Pkcs11Error::UserNotLoggedIn);
        }
        // An operation whose key takes the token PIN needs nothing more.
        let Some((pending, key)) = self.pending_key(h)? else {
            return Ok(());
        };
        let pin = Zeroizing::new(pin.to_vec());
        if key.can_sign {
            self.check_pin(&key, &pin)?;
            // Its own PIN is the token PIN after all: no context login next time.
            let same = lock(&self.pin)
                .as_ref()
                .is_some_and(|token| bool::from(token.as_slice().ct_eq(pin.as_slice())));
            if same {
                lock(&self.store).token_pin.add(key.digest, None);
            }
        }
        // A decrypt-only key cannot be checked without its ciphertext: the decryption
        // itself presents the PIN, and a wrong one fails there (and counts in tpmd).
        let session = self.session(h)?;
        let mut s = lock(&session);
        let slot = match pending {
            Pending::Sign => s.sign.as_mut().map(|op| &mut op.context_pin),
            Pending::Decrypt => s.decrypt.as_mut().map(|op| &mut op.context_pin),
        };
        match slot {
            Some(slot) => {
                *slot = Some(pin);
                Ok(())
            }
            None => Err(Pkcs11Error::OperationNotInitialized),
        }
    }

    pub fn logout(&self) -> Result<()> {
        let mut pin = lock(&self.pin);
        if pin.is_none() {
            return Err(Pkcs11Error::UserNotLoggedIn);
        }
        *pin = None;
        Ok(())
    }
}
