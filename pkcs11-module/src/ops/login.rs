//! C_Login / C_Logout: the PIN is the auth value of the keys that have one.

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
        if self.logged_in() {
            return Err(Pkcs11Error::UserAlreadyLoggedIn);
        }
        self.refresh();
        let probe = lock(&self.store).first_key_with_auth();
        let pin = Zeroizing::new(pin.to_vec());
        if let Some(key) = probe {
            // A wrong PIN must fail here, not at the first signature; tpmd counts the
            // failure against this caller's rate limit.
            *lock(&self.pin) = Some(pin.clone());
            let mech = match key.parts {
                PublicParts::Rsa { .. } => SignMech::RsaPkcsHash(Hash::Sha256),
                PublicParts::Ec { .. } => SignMech::EcdsaHash(Hash::Sha256),
            };
            let checked = self.sign_now(&key, mech, &[0u8; 32]);
            if let Err(e) = checked {
                *lock(&self.pin) = None;
                return Err(e);
            }
        }
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
