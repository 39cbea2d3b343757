//! C_Login / C_Logout: the PIN is the auth value of the keys that have one.
//!
//! A PIN is checked before anyone can use it: C_Login signs once with a key that needs
//! the PIN, presenting it through tpmd, and only on success stores it, which is what
//! makes the application logged in. Until then other threads see no PIN and get
//! CKR_USER_NOT_LOGGED_IN, so an unverified PIN never reaches the TPM from a C_Sign
//! and never burns a second dictionary-attack try. The check is an ordinary Sign through
//! tpmd, so a wrong PIN counts against the caller's budget there like any wrong auth
//! value.

use cryptoki_sys::{CKU_CONTEXT_SPECIFIC, CKU_USER, CK_USER_TYPE};
use zeroize::Zeroizing;

use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{Hash, SignMech};
use crate::module::{lock, Module};
use crate::store::key::PublicParts;

impl Module {
    pub fn login(&self, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        match user {
            CKU_USER => {}
            CKU_CONTEXT_SPECIFIC => {
                // No key needs re-authentication per use (CKA_ALWAYS_AUTHENTICATE is false).
                return if self.logged_in() {
                    Ok(())
                } else {
                    Err(Pkcs11Error::UserNotLoggedIn)
                };
            }
            _ => return Err(Pkcs11Error::UserTypeInvalid),
        }
        // One check at a time: a second C_Login waits, then finds the user logged in.
        let _gate = lock(&self.login_gate);
        if self.logged_in() {
            return Err(Pkcs11Error::UserAlreadyLoggedIn);
        }
        self.refresh();
        let probe = lock(&self.store).first_key_with_auth();
        let pin = Zeroizing::new(pin.to_vec());
        if let Some(key) = probe {
            let mech = match key.parts {
                PublicParts::Rsa { .. } => SignMech::RsaPkcsHash(Hash::Sha256),
                PublicParts::Ec { .. } => SignMech::EcdsaHash(Hash::Sha256),
            };
            self.sign_with_auth(&key, mech, &[0u8; 32], pin.clone())?;
        }
        // Without a key that needs it, there is nothing to check the PIN against: it
        // becomes the auth value of the keys created from now on.
        *lock(&self.pin) = Some(pin);
        Ok(())
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
