//! C_Verify*: in software with the key object's public key.

use cryptoki_sys::{CKF_VERIFY, CK_OBJECT_HANDLE, CK_SESSION_HANDLE};

use crate::crypto::verify::verify;
use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{offered, sign_mech, MechanismArg};
use crate::module::{lock, Module};
use crate::session::{MessageInput, VerifyOp};
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
            input: MessageInput::new(mech.hasher()),
        });
        Ok(())
    }

    pub fn verify_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        s.verify
            .as_mut()
            .ok_or(Pkcs11Error::OperationNotInitialized)?
            .input
            .update(data);
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
        let op = lock(&session)
            .verify
            .take()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        if data.is_some() && op.input.multi_part {
            return Err(Pkcs11Error::OperationActive);
        }
        let input = op.input.finish(data);
        verify(&op.parts, op.mech, &input, signature)
    }

    pub fn verify_abort(&self, h: CK_SESSION_HANDLE) {
        if let Ok(session) = self.session(h) {
            lock(&session).verify = None;
        }
    }
}
