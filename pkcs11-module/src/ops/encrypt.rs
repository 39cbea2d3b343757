//! C_Encrypt: in software with the key object's RSA public key, for the schemes the
//! token can decrypt.

use cryptoki_sys::{CKF_ENCRYPT, CK_OBJECT_HANDLE, CK_SESSION_HANDLE};
use zeroize::Zeroizing;

use crate::crypto::encrypt::encrypt;
use crate::error::{Pkcs11Error, Result};
use crate::mechanism::list::can_decrypt;
use crate::mechanism::{cipher_mech, offered, MechanismArg};
use crate::module::{lock, Module};
use crate::session::{EncryptOp, Produced};
use crate::store::key::PublicParts;

impl Module {
    pub fn encrypt_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &MechanismArg,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        if s.encrypt.is_some() {
            return Err(Pkcs11Error::OperationActive);
        }
        let family = self.family();
        if !offered(family, mech.mechanism, CKF_ENCRYPT) {
            return Err(Pkcs11Error::MechanismInvalid);
        }
        let mech = cipher_mech(mech)?;
        let key = self.public_half(key)?;
        if !matches!(key.parts, PublicParts::Rsa { .. }) {
            return Err(Pkcs11Error::KeyTypeInconsistent);
        }
        if !can_decrypt(family, &key) {
            return Err(Pkcs11Error::KeyFunctionNotPermitted);
        }
        s.encrypt = Some(EncryptOp {
            parts: key.parts.clone(),
            mech,
        });
        Ok(())
    }

    /// C_Encrypt: the ciphertext is as long as the modulus, so a length query or a short
    /// buffer needs no work and keeps the operation.
    pub fn encrypt(
        &self,
        h: CK_SESSION_HANDLE,
        plaintext: &[u8],
        room: Option<usize>,
    ) -> Result<Produced> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        let op = s
            .encrypt
            .as_ref()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        let PublicParts::Rsa { modulus, exponent } = &op.parts else {
            s.encrypt = None;
            return Err(Pkcs11Error::KeyTypeInconsistent);
        };
        let k = modulus.len();
        match room {
            None => return Ok(Produced::Length(k)),
            Some(r) if r < k => return Err(Pkcs11Error::BufferTooSmall(k)),
            Some(_) => {}
        }
        let result = encrypt(modulus, exponent, &op.mech, plaintext);
        s.encrypt = None;
        Ok(Produced::Bytes(Zeroizing::new(result?)))
    }

    pub fn encrypt_abort(&self, h: CK_SESSION_HANDLE) {
        if let Ok(session) = self.session(h) {
            lock(&session).encrypt = None;
        }
    }
}
