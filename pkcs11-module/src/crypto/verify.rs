//! C_Verify's check, with the key object's public key.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::{Pkcs1v15Sign, Pss};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};
use tpmd_api::public::EccCurve;

use super::rsa_public;
use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{ecdsa_digest, Hash, SignMech};
use crate::store::key::PublicParts;

fn pss(hash: Hash) -> Pss {
    // The TPM's PSS salt is as long as the digest; verification insists on the same.
    match hash {
        Hash::Sha1 => Pss::new_with_salt::<Sha1>(hash.size()),
        Hash::Sha256 => Pss::new_with_salt::<Sha256>(hash.size()),
        Hash::Sha384 => Pss::new_with_salt::<Sha384>(hash.size()),
        Hash::Sha512 => Pss::new_with_salt::<Sha512>(hash.size()),
    }
}

fn pkcs1(hash: Option<Hash>) -> Pkcs1v15Sign {
    match hash {
        Some(h) => Pkcs1v15Sign {
            hash_len: Some(h.size()),
            prefix: h.digest_info_prefix().into(),
        },
        // CKM_RSA_PKCS: the caller's bytes were padded as they are.
        None => Pkcs1v15Sign::new_unprefixed(),
    }
}

fn invalid<E>(_: E) -> Pkcs11Error {
    Pkcs11Error::SignatureInvalid
}

/// Checks `signature` over `input`: the digest for hashing mechanisms (computed by the
/// caller of this function), the caller's bytes for CKM_RSA_PKCS and CKM_ECDSA.
pub fn verify(parts: &PublicParts, mech: SignMech, input: &[u8], signature: &[u8]) -> Result<()> {
    if signature.len() != parts.signature_len() {
        return Err(Pkcs11Error::SignatureLenRange);
    }
    match (mech, parts) {
        (
            SignMech::RsaPkcs | SignMech::RsaPkcsHash(_) | SignMech::RsaPss { .. },
            PublicParts::Rsa { modulus, exponent },
        ) => {
            let key = rsa_public(modulus, exponent)?;
            match mech {
                SignMech::RsaPkcs if input.len() + 11 > modulus.len() => {
                    Err(Pkcs11Error::DataLenRange)
                }
                SignMech::RsaPkcs => key.verify(pkcs1(None), input, signature).map_err(invalid),
                SignMech::RsaPkcsHash(h) => key
                    .verify(pkcs1(Some(h)), input, signature)
                    .map_err(invalid),
                SignMech::RsaPss { hash, .. } if input.len() != hash.size() => {
                    Err(Pkcs11Error::DataLenRange)
                }
                SignMech::RsaPss { hash, .. } => {
                    key.verify(pss(hash), input, signature).map_err(invalid)
                }
                _ => Err(Pkcs11Error::KeyTypeInconsistent),
            }
        }
        (SignMech::Ecdsa | SignMech::EcdsaHash(_), PublicParts::Ec { curve, point, .. }) => {
            let (_, short) = ecdsa_digest(input, curve.field_size())?;
            // ECDSA takes a shorter digest as the number it is; RustCrypto would shift it
            // (zeros on the right), so it gets the number at full field size.
            let mut digest = vec![0u8; curve.field_size().saturating_sub(short.len())];
            digest.extend_from_slice(&short);
            let sec1 = point.get(2..).ok_or(Pkcs11Error::SignatureInvalid)?;
            let bad_key = |_| Pkcs11Error::General("the key's EC point is unusable".into());
            match curve {
                EccCurve::NistP256 => {
                    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1).map_err(bad_key)?;
                    let sig = p256::ecdsa::Signature::from_slice(signature).map_err(invalid)?;
                    key.verify_prehash(&digest, &sig).map_err(invalid)
                }
                EccCurve::NistP384 => {
                    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(sec1).map_err(bad_key)?;
                    let sig = p384::ecdsa::Signature::from_slice(signature).map_err(invalid)?;
                    key.verify_prehash(&digest, &sig).map_err(invalid)
                }
            }
        }
        _ => Err(Pkcs11Error::KeyTypeInconsistent),
    }
}
