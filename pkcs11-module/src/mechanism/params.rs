//! The mechanism an application passes, copied out of C memory, and what it asks for.

use cryptoki_sys::*;

use super::{CipherMech, Hash, SignMech};
use crate::error::{Pkcs11Error, Result};

/// CK_RSA_PKCS_OAEP_PARAMS, with the label copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OaepArg {
    pub hash_alg: CK_MECHANISM_TYPE,
    pub mgf: CK_ULONG,
    pub label: Vec<u8>,
}

/// A mechanism as the application passed it, copied out of C memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MechanismArg {
    pub mechanism: CK_MECHANISM_TYPE,
    /// CK_RSA_PKCS_PSS_PARAMS: hashAlg, mgf, sLen.
    pub pss: Option<(CK_MECHANISM_TYPE, CK_ULONG, CK_ULONG)>,
    pub oaep: Option<OaepArg>,
}

impl MechanismArg {
    pub fn plain(mechanism: CK_MECHANISM_TYPE) -> MechanismArg {
        MechanismArg {
            mechanism,
            pss: None,
            oaep: None,
        }
    }
}

fn check_pss(arg: &MechanismArg, expected: Option<Hash>) -> Result<Hash> {
    let (hash_alg, mgf, salt) = arg.pss.ok_or(Pkcs11Error::MechanismParamInvalid(
        "PSS needs CK_RSA_PKCS_PSS_PARAMS",
    ))?;
    let hash = Hash::from_ckm(hash_alg)
        .ok_or(Pkcs11Error::MechanismParamInvalid("unsupported PSS hash"))?;
    if expected.is_some_and(|e| e != hash) {
        return Err(Pkcs11Error::MechanismParamInvalid(
            "PSS hashAlg differs from the mechanism's hash",
        ));
    }
    // The TPM signs PSS with MGF1 over the same hash and a salt as long as the digest.
    if mgf != hash.mgf() || salt as usize != hash.size() {
        return Err(Pkcs11Error::MechanismParamInvalid(
            "the TPM signs PSS with MGF1 of the same hash and sLen = digest length",
        ));
    }
    Ok(hash)
}

/// The signing (or verification) mechanism for an application's CK_MECHANISM.
pub fn sign_mech(arg: &MechanismArg) -> Result<SignMech> {
    Ok(match arg.mechanism {
        CKM_RSA_PKCS => SignMech::RsaPkcs,
        CKM_SHA1_RSA_PKCS => SignMech::RsaPkcsHash(Hash::Sha1),
        CKM_SHA256_RSA_PKCS => SignMech::RsaPkcsHash(Hash::Sha256),
        CKM_SHA384_RSA_PKCS => SignMech::RsaPkcsHash(Hash::Sha384),
        CKM_SHA512_RSA_PKCS => SignMech::RsaPkcsHash(Hash::Sha512),
        CKM_RSA_PKCS_PSS => SignMech::RsaPss {
            hash: check_pss(arg, None)?,
            prehashed: true,
        },
        CKM_SHA256_RSA_PKCS_PSS | CKM_SHA384_RSA_PKCS_PSS | CKM_SHA512_RSA_PKCS_PSS => {
            let want = match arg.mechanism {
                CKM_SHA256_RSA_PKCS_PSS => Hash::Sha256,
                CKM_SHA384_RSA_PKCS_PSS => Hash::Sha384,
                _ => Hash::Sha512,
            };
            SignMech::RsaPss {
                hash: check_pss(arg, Some(want))?,
                prehashed: false,
            }
        }
        CKM_ECDSA => SignMech::Ecdsa,
        CKM_ECDSA_SHA1 => SignMech::EcdsaHash(Hash::Sha1),
        CKM_ECDSA_SHA256 => SignMech::EcdsaHash(Hash::Sha256),
        CKM_ECDSA_SHA384 => SignMech::EcdsaHash(Hash::Sha384),
        CKM_ECDSA_SHA512 => SignMech::EcdsaHash(Hash::Sha512),
        _ => return Err(Pkcs11Error::MechanismInvalid),
    })
}

/// The encryption (or decryption) mechanism for an application's CK_MECHANISM.
pub fn cipher_mech(arg: &MechanismArg) -> Result<CipherMech> {
    match arg.mechanism {
        CKM_RSA_PKCS => Ok(CipherMech::RsaPkcs),
        CKM_RSA_PKCS_OAEP => {
            let oaep = arg.oaep.as_ref().ok_or(Pkcs11Error::MechanismParamInvalid(
                "OAEP needs CK_RSA_PKCS_OAEP_PARAMS",
            ))?;
            let hash = Hash::from_ckm(oaep.hash_alg)
                .ok_or(Pkcs11Error::MechanismParamInvalid("unsupported OAEP hash"))?;
            // The TPM decrypts OAEP with MGF1 over the label's hash; encryption here
            // follows it so that what is encrypted can be decrypted.
            if oaep.mgf != hash.mgf() {
                return Err(Pkcs11Error::MechanismParamInvalid(
                    "the TPM decrypts OAEP with MGF1 of the same hash as the label's",
                ));
            }
            Ok(CipherMech::RsaOaep {
                hash,
                label: oaep.label.clone(),
            })
        }
        _ => Err(Pkcs11Error::MechanismInvalid),
    }
}
