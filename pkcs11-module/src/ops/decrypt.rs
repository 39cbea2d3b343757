//! C_Decrypt*: the private-key operation in tpmd. OAEP with a label the TPM cannot take
//! (TPM2_RSA_Decrypt wants labels that end in a zero byte) is decrypted raw by the TPM
//! and its padding removed here, where the key's scheme allows raw decryption.

use std::sync::Arc;

use cryptoki_sys::{
    CKF_DECRYPT, CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP, CK_OBJECT_HANDLE, CK_SESSION_HANDLE,
};
use tpmd_api::client::to_send;
use tpmd_api::dbus::{scheme, Bytes, DecryptOptions};
use zeroize::Zeroizing;

use super::daemon_error;
use crate::crypto::oaep;
use crate::error::{Pkcs11Error, Result};
use crate::mechanism::list::{decrypts_with, oaep_hash_allowed};
use crate::mechanism::{cipher_mech, offered, CipherMech, Hash, MechanismArg};
use crate::module::{lock, Module};
use crate::session::{DecryptOp, Produced};
use crate::store::key::{Decryption, KeyEntry, PublicParts};
use crate::token::Family;

/// How a decryption reaches the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// The TPM removes the padding (a label, if any, ends in a zero byte).
    Tpm {
        scheme: &'static str,
        hash: &'static str,
        label: Vec<u8>,
    },
    /// The TPM decrypts raw and OAEP is removed here.
    RawThenOaep { hash: Hash, label: Vec<u8> },
}

fn plan(family: Family, key: &KeyEntry, mech: &CipherMech) -> Result<Plan> {
    let mechanism = match mech {
        CipherMech::RsaPkcs => CKM_RSA_PKCS,
        CipherMech::RsaOaep { .. } => CKM_RSA_PKCS_OAEP,
    };
    if !decrypts_with(family, key, mechanism) {
        // The key's own scheme (fixed in its public area) excludes this mechanism.
        return Err(Pkcs11Error::MechanismInvalid);
    }
    Ok(match mech {
        CipherMech::RsaPkcs => Plan::Tpm {
            scheme: scheme::RSA_PKCS1_DECRYPT,
            hash: "sha256",
            label: Vec::new(),
        },
        CipherMech::RsaOaep { hash, .. } if !oaep_hash_allowed(key, *hash) => {
            return Err(Pkcs11Error::MechanismParamInvalid(
                "this key's public area fixes OAEP to another hash",
            ))
        }
        CipherMech::RsaOaep { hash, label } if label.last().is_none_or(|b| *b == 0) => {
            Plan::Tpm {
                scheme: scheme::RSA_OAEP,
                hash: hash.name(),
                label: label.clone(),
            }
        }
        CipherMech::RsaOaep { hash, label } if key.decryption == Decryption::Open => {
            Plan::RawThenOaep {
                hash: *hash,
                label: label.clone(),
            }
        }
        CipherMech::RsaOaep { .. } => {
            return Err(Pkcs11Error::MechanismParamInvalid(
                "TPM2_RSA_Decrypt takes only OAEP labels that end in a zero byte, and this key's public area fixes OAEP, so it cannot decrypt raw for the label to be checked here",
            ))
        }
    })
}

impl Module {
    pub fn decrypt_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &MechanismArg,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        if s.decrypt.is_some() {
            return Err(Pkcs11Error::OperationActive);
        }
        let family = self.family();
        if !offered(family, mech.mechanism, CKF_DECRYPT) {
            return Err(Pkcs11Error::MechanismInvalid);
        }
        let mech = cipher_mech(mech)?;
        let key = self.private_key(key)?;
        if !matches!(key.parts, PublicParts::Rsa { .. }) {
            return Err(Pkcs11Error::KeyTypeInconsistent);
        }
        if !key.can_decrypt {
            return Err(Pkcs11Error::KeyFunctionNotPermitted);
        }
        plan(family, &key, &mech)?;
        s.decrypt = Some(DecryptOp {
            key,
            mech,
            result: None,
            context_pin: None,
        });
        Ok(())
    }

    /// The plaintext, from tpmd (and the OAEP decoding here when the TPM decrypted raw).
    fn decrypt_now(
        &self,
        key: &KeyEntry,
        plan: Plan,
        auth: Zeroizing<Vec<u8>>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (scheme_name, hash, label, oaep_here) = match plan {
            Plan::Tpm {
                scheme,
                hash,
                label,
            } => (scheme, hash, label, None),
            Plan::RawThenOaep { hash, label } => {
                (scheme::RSA_RAW, "sha256", Vec::new(), Some((hash, label)))
            }
        };
        let auth = Arc::new(auth);
        let blob = Arc::new(to_send(&key.blob, key.takes_user_policies).into_owned());
        let ct = Arc::new(ciphertext.to_vec());
        let label = Arc::new(label);
        let out = self
            .daemon
            .call(move |p| {
                let (auth, blob, ct, label) =
                    (auth.clone(), blob.clone(), ct.clone(), label.clone());
                async move {
                    if label.is_empty() {
                        // The original method, so that an older tpmd serves it too.
                        p.decrypt(
                            Bytes::new(&blob),
                            Bytes::new(&auth),
                            scheme_name,
                            hash,
                            Bytes::new(&ct),
                        )
                        .await
                    } else {
                        let options = DecryptOptions {
                            label: Some(label.to_vec()),
                        };
                        p.decrypt_with_options(
                            Bytes::new(&blob),
                            Bytes::new(&auth),
                            scheme_name,
                            hash,
                            Bytes::new(&ct),
                            options,
                        )
                        .await
                    }
                }
            })
            .map_err(|e| daemon_error(e, true))?;
        let out = Zeroizing::new(out.into_vec());
        match oaep_here {
            Some((hash, label)) => oaep::decode(&out, hash, &label),
            None => Ok(out),
        }
    }

    pub fn decrypt(
        &self,
        h: CK_SESSION_HANDLE,
        ciphertext: &[u8],
        room: Option<usize>,
    ) -> Result<Produced> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        let op = s
            .decrypt
            .as_mut()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        let k = op.key.parts.signature_len();
        if op.result.is_none() {
            if ciphertext.len() != k {
                s.decrypt = None;
                return Err(Pkcs11Error::EncryptedDataLenRange);
            }
            // Asking for the length needs no TPM work: the plaintext is at most k bytes.
            let Some(_) = room else {
                return Ok(Produced::Length(k));
            };
            // Without its context-specific login, a key with its own PIN waits for one.
            let auth = self.auth_for(&op.key, op.context_pin.as_ref())?;
            let result = plan(self.family(), &op.key, &op.mech)
                .and_then(|plan| self.decrypt_now(&op.key, plan, auth, ciphertext));
            match result {
                Ok(plain) => op.result = Some(plain),
                Err(e) => {
                    s.decrypt = None;
                    return Err(e);
                }
            }
        }
        let Some(plain) = op.result.as_ref() else {
            return Err(Pkcs11Error::OperationNotInitialized);
        };
        match room {
            None => Ok(Produced::Length(plain.len())),
            Some(r) if r < plain.len() => Err(Pkcs11Error::BufferTooSmall(plain.len())),
            Some(_) => {
                let out = plain.clone();
                s.decrypt = None;
                Ok(Produced::Bytes(out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DirKind;

    fn key(decryption: Decryption) -> KeyEntry {
        KeyEntry {
            path: "k".into(),
            dir_kind: DirKind::Store,
            blob: Vec::new(),
            takes_user_policies: false,
            digest: [0; 32],
            parts: PublicParts::Rsa {
                modulus: vec![0xff; 256],
                exponent: vec![1, 0, 1],
            },
            spki: Vec::new(),
            empty_auth: true,
            can_sign: true,
            can_decrypt: true,
            decryption,
            label: String::new(),
            id: Vec::new(),
        }
    }

    fn oaep(label: &[u8]) -> CipherMech {
        CipherMech::RsaOaep {
            hash: Hash::Sha256,
            label: label.to_vec(),
        }
    }

    #[test]
    fn labels_go_to_the_tpm_when_it_takes_them_else_raw() {
        let open = key(Decryption::Open);
        assert!(matches!(
            plan(Family::Tpm2, &open, &oaep(b"")),
            Ok(Plan::Tpm { .. })
        ));
        assert!(matches!(
            plan(Family::Tpm2, &open, &oaep(b"tls\0")),
            Ok(Plan::Tpm { .. })
        ));
        assert!(matches!(
            plan(Family::Tpm2, &open, &oaep(b"tls")),
            Ok(Plan::RawThenOaep { .. })
        ));
        let fixed = key(Decryption::Oaep(Hash::Sha256));
        assert!(matches!(
            plan(Family::Tpm2, &fixed, &oaep(b"tls\0")),
            Ok(Plan::Tpm { .. })
        ));
        assert!(matches!(
            plan(Family::Tpm2, &fixed, &oaep(b"tls")),
            Err(Pkcs11Error::MechanismParamInvalid(_))
        ));
        assert_eq!(
            plan(Family::Tpm2, &fixed, &CipherMech::RsaPkcs),
            Err(Pkcs11Error::MechanismInvalid)
        );
        // A TPM 1.2 decrypts PKCS#1 v1.5 with keys of that scheme, and no OAEP.
        let pkcs1 = key(Decryption::Pkcs1);
        assert!(plan(Family::Tpm12, &pkcs1, &CipherMech::RsaPkcs).is_ok());
        assert!(plan(Family::Tpm12, &open, &oaep(b"")).is_err());
        assert!(plan(
            Family::Tpm12,
            &key(Decryption::Oaep(Hash::Sha1)),
            &CipherMech::RsaPkcs
        )
        .is_err());
    }
}
