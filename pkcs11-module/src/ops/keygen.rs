//! C_GenerateKeyPair: the key is made inside the TPM by tpmd; only the blob is stored.

use cryptoki_sys::*;
use tpmd_api::dbus::GenerateOptions;

use super::daemon_error;
use crate::error::{Pkcs11Error, Result};
use crate::mechanism::offered;
use crate::module::{lock, Module};
use crate::session::{template_get, template_ulong, Template};
use crate::store::key::{P256_PARAMS, P384_PARAMS};

fn key_type(mech: CK_MECHANISM_TYPE, public: &Template) -> Result<&'static str> {
    match mech {
        CKM_RSA_PKCS_KEY_PAIR_GEN => {
            if template_ulong(public, CKA_MODULUS_BITS).is_some_and(|b| b != 2048) {
                return Err(Pkcs11Error::AttributeValueInvalid(CKA_MODULUS_BITS));
            }
            let e = template_get(public, CKA_PUBLIC_EXPONENT).unwrap_or(&[1, 0, 1]);
            let first = e.iter().position(|b| *b != 0).unwrap_or(e.len());
            if e[first..] != [1, 0, 1] {
                return Err(Pkcs11Error::AttributeValueInvalid(CKA_PUBLIC_EXPONENT));
            }
            Ok("rsa2048")
        }
        CKM_EC_KEY_PAIR_GEN => match template_get(public, CKA_EC_PARAMS) {
            Some(p) if p == P256_PARAMS => Ok("ecc-p256"),
            Some(p) if p == P384_PARAMS => Ok("ecc-p384"),
            Some(_) => Err(Pkcs11Error::AttributeValueInvalid(CKA_EC_PARAMS)),
            None => Err(Pkcs11Error::TemplateIncomplete(CKA_EC_PARAMS)),
        },
        _ => Err(Pkcs11Error::MechanismInvalid),
    }
}

impl Module {
    /// Returns (public, private) handles. The key's auth value is the PIN when logged
    /// in, else empty.
    pub fn generate_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        public: &Template,
        private: &Template,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        self.require_rw(h)?;
        if !offered(self.family(), mech, CKF_GENERATE_KEY_PAIR) {
            return Err(Pkcs11Error::MechanismInvalid);
        }
        let key_type = key_type(mech, public)?;
        if template_get(private, CKA_EXTRACTABLE).is_some_and(|v| v.first() == Some(&1)) {
            return Err(Pkcs11Error::TemplateInconsistent(
                "TPM keys are never extractable",
            ));
        }
        let auth = std::sync::Arc::new(lock(&self.pin).clone().unwrap_or_default());
        let key_auth = auth.clone();
        let pem = self
            .daemon
            .call(move |p| {
                let auth = auth.clone();
                async move {
                    p.generate(key_type, &auth, GenerateOptions::default())
                        .await
                }
            })
            .map_err(|e| daemon_error(e, false))?;
        let label = template_get(private, CKA_LABEL)
            .or_else(|| template_get(public, CKA_LABEL))
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .filter(|l| !l.is_empty());
        let id = template_get(private, CKA_ID).or_else(|| template_get(public, CKA_ID));
        let (private, public) = self.store_key(&pem, &key_auth, label, id)?;
        Ok((public, private))
    }
}
