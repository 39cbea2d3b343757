//! C_Verify*: in software with the key object's public key.

use cryptoki_sys::{CKF_VERIFY, CK_OBJECT_HANDLE, CK_SESSION_HANDLE};
use zeroize::Zeroizing;

use crate::crypto::verify::verify;
use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{offered, sign_mech, MechanismArg};
use crate::module::{lock, Module};
use crate::session::VerifyOp;
use crate::store::key::PublicParts;

impl Module {
    pub fn verify_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &MechanismArg,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        if s.verify.is_some() {
            return Err(Pkcs11Error::OperationActive);
        }
        if !offered(self.family(), mech.mechanism, CKF_VERIFY) {
            return Err(Pkcs11Error::MechanismInvalid);
        }
        let mech = sign_mech(mech)?;
        let key = self.public_half(key)?;
        if mech.is_rsa() != matches!(key.parts, PublicParts::Rsa { .. }) {
            return Err(Pkcs11Error::KeyTypeInconsistent);
        }
        if !key.can_sign {
            return Err(Pkcs11Error::KeyFunctionNotPermitted);
        }
        s.verify = Some(VerifyOp {
            parts: key.parts.clone(),
            mech,
            hasher: mech.hasher(),
            data: Zeroizing::new(Vec::new()),
            multi_part: false,
        });
        Ok(())
    }

    pub fn verify_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        let op = s
            .verify
            .as_mut()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        op.multi_part = true;
        match op.hasher.as_mut() {
            Some(hasher) => hasher.update(data),
            None => op.data.extend_from_slice(data),
        }
        Ok(())
    }

    /// C_Verify (`data` is Some) or C_VerifyFinal (None). Either way the operation ends.
    pub fn verify(
        &self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        signature: &[u8],
    ) -> Result<()> {
        let session = self.session(h)?;
        let mut op = lock(&session)
            .verify
            .take()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        if data.is_some() && op.multi_part {
            return Err(Pkcs11Error::OperationActive);
        }
        if let Some(d) = data {
            match op.hasher.as_mut() {
                Some(hasher) => hasher.update(d),
                None => op.data.extend_from_slice(d),
            }
        }
        let input = match op.hasher.take() {
            Some(hasher) => Zeroizing::new(hasher.finish()),
            None => op.data.clone(),
        };
        verify(&op.parts, op.mech, &input, signature)
    }

    pub fn verify_abort(&self, h: CK_SESSION_HANDLE) {
        if let Ok(session) = self.session(h) {
            lock(&session).verify = None;
        }
    }
}
