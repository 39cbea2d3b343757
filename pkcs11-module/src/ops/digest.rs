//! C_Digest*: message digests in software (a token's digest mechanisms need no key).

use cryptoki_sys::CK_SESSION_HANDLE;
use zeroize::Zeroizing;

use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{Hash, Hasher, MechanismArg};
use crate::module::{lock, Module};
use crate::session::{DigestOp, Produced};

impl Module {
    pub fn digest_init(&self, h: CK_SESSION_HANDLE, mech: &MechanismArg) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        if s.digest.is_some() {
            return Err(Pkcs11Error::OperationActive);
        }
        let hash = Hash::from_ckm(mech.mechanism).ok_or(Pkcs11Error::MechanismInvalid)?;
        s.digest = Some(DigestOp {
            hash,
            hasher: Hasher::new(hash),
            multi_part: false,
        });
        Ok(())
    }

    pub fn digest_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        let op = s
            .digest
            .as_mut()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        op.multi_part = true;
        op.hasher.update(data);
        Ok(())
    }

    /// C_Digest (`data` is Some) or C_DigestFinal (None).
    pub fn digest(
        &self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        room: Option<usize>,
    ) -> Result<Produced> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        let op = s
            .digest
            .as_ref()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        if data.is_some() && op.multi_part {
            s.digest = None;
            return Err(Pkcs11Error::OperationActive);
        }
        let needed = op.hash.size();
        match room {
            None => return Ok(Produced::Length(needed)),
            Some(r) if r < needed => return Err(Pkcs11Error::BufferTooSmall(needed)),
            Some(_) => {}
        }
        let Some(mut op) = s.digest.take() else {
            return Err(Pkcs11Error::OperationNotInitialized);
        };
        if let Some(d) = data {
            op.hasher.update(d);
        }
        Ok(Produced::Bytes(Zeroizing::new(op.hasher.finish())))
    }

    pub fn digest_abort(&self, h: CK_SESSION_HANDLE) {
        if let Ok(session) = self.session(h) {
            lock(&session).digest = None;
        }
    }
}
