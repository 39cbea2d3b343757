//! C_Sign*: checks here, the private-key operation in tpmd.

use std::sync::Arc;

use cryptoki_sys::{CK_OBJECT_HANDLE, CK_SESSION_HANDLE};
use tpmd_api::client::to_send;
use tpmd_api::dbus::{scheme, ByteBuf, Bytes};
use zeroize::Zeroizing;

use super::daemon_error;
use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{
    ecdsa_digest, offered, parse_digest_info, sign_mech, MechanismArg, SignMech,
};
use crate::module::{lock, Module};
use crate::session::{MessageInput, Produced, SignOp};
use crate::store::key::{KeyEntry, PublicParts};

/// A request to tpmd's Sign.
struct SignRequest {
    scheme: &'static str,
    hash: &'static str,
    data: Zeroizing<Vec<u8>>,
}

fn sign_request(key: &KeyEntry, mech: SignMech, input: &[u8]) -> Result<SignRequest> {
    let req = |scheme, hash: &'static str, data: &[u8]| {
        Ok(SignRequest {
            scheme,
            hash,
            data: Zeroizing::new(data.to_vec()),
        })
    };
    match (mech, &key.parts) {
        (SignMech::RsaPkcs, PublicParts::Rsa { modulus, .. }) => {
            if input.len() + 11 > modulus.len() {
                return Err(Pkcs11Error::DataLenRange);
            }
            match parse_digest_info(input) {
                // RSASSA in the TPM gives the same bytes and needs no decrypt attribute.
                Some((h, digest)) => req(scheme::RSA_PKCS1, h.name(), digest),
                None => req(scheme::RSA_PKCS1_RAW, "sha256", input),
            }
        }
        (SignMech::RsaPkcsHash(h), PublicParts::Rsa { .. }) => {
            req(scheme::RSA_PKCS1, h.name(), input)
        }
        (SignMech::RsaPss { hash, .. }, PublicParts::Rsa { .. }) => {
            if input.len() != hash.size() {
                return Err(Pkcs11Error::DataLenRange);
            }
            req(scheme::RSA_PSS, hash.name(), input)
        }
        (SignMech::Ecdsa | SignMech::EcdsaHash(_), PublicParts::Ec { curve, .. }) => {
            let (h, digest) = ecdsa_digest(input, curve.field_size())?;
            req(scheme::ECDSA, h.name(), &digest)
        }
        _ => Err(Pkcs11Error::KeyTypeInconsistent),
    }
}

impl Module {
    /// Signs with a key and the given auth value; the one place a signature is made.
    pub fn sign_with_auth(
        &self,
        key: &KeyEntry,
        mech: SignMech,
        input: &[u8],
        auth: Zeroizing<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let req = Arc::new(sign_request(key, mech, input)?);
        let auth = Arc::new(auth);
        let blob = Arc::new(to_send(&key.blob, key.takes_user_policies).into_owned());
        self.daemon
            .call(move |p| {
                let (req, auth, blob) = (req.clone(), auth.clone(), blob.clone());
                async move {
                    p.sign(
                        Bytes::new(&blob),
                        Bytes::new(&auth),
                        req.scheme,
                        req.hash,
                        Bytes::new(&req.data),
                    )
                    .await
                    .map(ByteBuf::into_vec)
                }
            })
            .map_err(|e| daemon_error(e, false))
    }

    pub fn sign_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &MechanismArg,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        if s.sign.is_some() {
            return Err(Pkcs11Error::OperationActive);
        }
        if !offered(self.family(), mech.mechanism, cryptoki_sys::CKF_SIGN) {
            return Err(Pkcs11Error::MechanismInvalid);
        }
        let mech = sign_mech(mech)?;
        let key = self.private_key(key)?;
        if mech.is_rsa() != matches!(key.parts, PublicParts::Rsa { .. }) {
            return Err(Pkcs11Error::KeyTypeInconsistent);
        }
        if !key.can_sign {
            return Err(Pkcs11Error::KeyFunctionNotPermitted);
        }
        s.sign = Some(SignOp {
            key,
            mech,
            input: MessageInput::new(mech.hasher()),
            context_pin: None,
        });
        Ok(())
    }

    /// C_Sign (`data` is Some) or C_SignFinal (None). `room` is the caller's buffer
    /// size, None when it only asks for the length.
    pub fn sign(
        &self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        room: Option<usize>,
    ) -> Result<Produced> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        let op = s
            .sign
            .as_ref()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        if data.is_some() && op.input.multi_part {
            // C_Sign after C_SignUpdate is out of order; the operation ends.
            s.sign = None;
            return Err(Pkcs11Error::OperationActive);
        }
        let needed = op.key.parts.signature_len();
        match room {
            None => return Ok(Produced::Length(needed)),
            Some(r) if r < needed => return Err(Pkcs11Error::BufferTooSmall(needed)),
            Some(_) => {}
        }
        // Before the operation ends: without its context-specific login, a key with its
        // own PIN answers CKR_USER_NOT_LOGGED_IN and the operation waits for one.
        let auth = self.auth_for(&op.key, op.context_pin.as_ref())?;
        let Some(op) = s.sign.take() else {
            return Err(Pkcs11Error::OperationNotInitialized);
        };
        // The session stays locked: PKCS#11 serializes calls within one session.
        let input = op.input.finish(data);
        let sig = self.sign_with_auth(&op.key, op.mech, &input, auth)?;
        Ok(Produced::Bytes(Zeroizing::new(sig)))
    }

    pub fn sign_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        s.sign
            .as_mut()
            .ok_or(Pkcs11Error::OperationNotInitialized)?
            .input
            .update(data);
        Ok(())
    }

    /// Ends a sign operation after an error the caller cannot recover from.
    pub fn sign_abort(&self, h: CK_SESSION_HANDLE) {
        if let Ok(session) = self.session(h) {
            lock(&session).sign = None;
        }
    }
}
