//! Which mechanisms a token offers: what its TPM family computes. Signing, decryption
//! and key generation happen in the TPM; verification and encryption in software with
//! the public key, offered for the schemes the token can also sign or decrypt, so that
//! an application never encrypts to a scheme the token cannot undo.

use cryptoki_sys::*;

use super::Hash;
use crate::store::key::{Decryption, KeyEntry, PublicParts};
use crate::token::Family;

const RSA_MIN: CK_ULONG = 2048;
/// A TPM 1.2 holds RSA keys of 512 to 2048 bits.
const RSA12_MIN: CK_ULONG = 512;
const RSA12_MAX: CK_ULONG = 2048;
const RSA_MAX: CK_ULONG = 4096;
const EC_MIN: CK_ULONG = 256;
const EC_MAX: CK_ULONG = 384;
const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
const SIGN: CK_FLAGS = CKF_HW | CKF_SIGN | CKF_VERIFY;
const CIPHER: CK_FLAGS = CKF_HW | CKF_DECRYPT | CKF_ENCRYPT;

/// (type, min key size, max key size, flags).
pub type Entry = (CK_MECHANISM_TYPE, CK_ULONG, CK_ULONG, CK_FLAGS);

/// Digests are computed in software (no CKF_HW); they need no key.
const DIGESTS: [Entry; 4] = [
    (CKM_SHA_1, 0, 0, CKF_DIGEST),
    (CKM_SHA256, 0, 0, CKF_DIGEST),
    (CKM_SHA384, 0, 0, CKF_DIGEST),
    (CKM_SHA512, 0, 0, CKF_DIGEST),
];

const RSA_PKCS1: [CK_MECHANISM_TYPE; 4] = [
    CKM_SHA1_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
];

const RSA_PSS: [CK_MECHANISM_TYPE; 4] = [
    CKM_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
];

const ECDSA: [CK_MECHANISM_TYPE; 5] = [
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
];

/// Every mechanism of a token on a TPM of this family.
pub fn mechanisms(family: Family) -> Vec<Entry> {
    let mut list = DIGESTS.to_vec();
    match family {
        Family::Tpm2 => {
            list.push((
                CKM_RSA_PKCS_KEY_PAIR_GEN,
                2048,
                2048,
                CKF_HW | CKF_GENERATE_KEY_PAIR,
            ));
            list.push((CKM_RSA_PKCS, RSA_MIN, RSA_MAX, SIGN | CIPHER));
            list.extend(RSA_PKCS1.map(|m| (m, RSA_MIN, RSA_MAX, SIGN)));
            list.extend(RSA_PSS.map(|m| (m, RSA_MIN, RSA_MAX, SIGN)));
            list.push((CKM_RSA_PKCS_OAEP, RSA_MIN, RSA_MAX, CIPHER));
            list.push((
                CKM_EC_KEY_PAIR_GEN,
                EC_MIN,
                EC_MAX,
                CKF_HW | CKF_GENERATE_KEY_PAIR | EC_FLAGS,
            ));
            list.extend(ECDSA.map(|m| (m, EC_MIN, EC_MAX, SIGN | EC_FLAGS)));
        }
        // A TPM 1.2 has no ECC and signs only PKCS#1 v1.5 (DER scheme). It decrypts OAEP
        // only in the TSS bind format, which no PKCS#11 mechanism describes.
        Family::Tpm12 => {
            list.push((
                CKM_RSA_PKCS_KEY_PAIR_GEN,
                2048,
                2048,
                CKF_HW | CKF_GENERATE_KEY_PAIR,
            ));
            list.push((CKM_RSA_PKCS, RSA12_MIN, RSA12_MAX, SIGN | CIPHER));
            list.extend(RSA_PKCS1.map(|m| (m, RSA12_MIN, RSA12_MAX, SIGN)));
        }
    }
    list
}

pub fn info(family: Family, m: CK_MECHANISM_TYPE) -> Option<CK_MECHANISM_INFO> {
    mechanisms(family)
        .into_iter()
        .find(|(t, ..)| *t == m)
        .map(|(_, min, max, flags)| CK_MECHANISM_INFO {
            ulMinKeySize: min,
            ulMaxKeySize: max,
            flags,
        })
}

/// Whether the token offers `m` for every use in `flags` (CKF_SIGN, CKF_DECRYPT...).
pub fn offered(family: Family, m: CK_MECHANISM_TYPE, flags: CK_FLAGS) -> bool {
    info(family, m).is_some_and(|i| i.flags & flags == flags)
}

/// The decryption mechanisms the key's own scheme leaves open on this family.
fn decryptions(family: Family, key: &KeyEntry) -> Vec<CK_MECHANISM_TYPE> {
    if !key.can_decrypt {
        return Vec::new();
    }
    match (family, key.decryption) {
        (Family::Tpm2, Decryption::Open) => vec![CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP],
        (_, Decryption::Pkcs1) => vec![CKM_RSA_PKCS],
        (Family::Tpm2, Decryption::Oaep(_)) => vec![CKM_RSA_PKCS_OAEP],
        _ => Vec::new(),
    }
}

/// Whether the key decrypts with some mechanism on this family (CKA_DECRYPT).
pub fn can_decrypt(family: Family, key: &KeyEntry) -> bool {
    !decryptions(family, key).is_empty()
}

/// Whether the key decrypts with `m` (an RSA decryption mechanism).
pub fn decrypts_with(family: Family, key: &KeyEntry, m: CK_MECHANISM_TYPE) -> bool {
    decryptions(family, key).contains(&m)
}

/// Whether the key's fixed OAEP scheme, if any, allows this hash.
pub fn oaep_hash_allowed(key: &KeyEntry, hash: Hash) -> bool {
    !matches!(key.decryption, Decryption::Oaep(h) if h != hash)
}

/// The mechanisms a key may be used with (CKA_ALLOWED_MECHANISMS): signing (and
/// verifying) for its type, and the decryptions its scheme allows.
pub fn allowed_for(family: Family, key: &KeyEntry) -> Vec<CK_MECHANISM_TYPE> {
    let rsa = matches!(key.parts, PublicParts::Rsa { .. });
    let decrypt = decryptions(family, key);
    mechanisms(family)
        .into_iter()
        .map(|(t, ..)| t)
        .filter(|t| Hash::from_ckm(*t).is_none())
        .filter(|t| *t != CKM_RSA_PKCS_KEY_PAIR_GEN && *t != CKM_EC_KEY_PAIR_GEN)
        .filter(|t| ECDSA.contains(t) != rsa)
        .filter(|t| *t != CKM_RSA_PKCS_OAEP || decrypt.contains(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tpm12_token_offers_only_what_a_tpm12_computes() {
        let m12: Vec<_> = mechanisms(Family::Tpm12).iter().map(|e| e.0).collect();
        for absent in RSA_PSS
            .iter()
            .chain(&ECDSA)
            .chain(&[CKM_RSA_PKCS_OAEP, CKM_EC_KEY_PAIR_GEN])
        {
            assert!(!m12.contains(absent), "{absent:#x} on a 1.2");
        }
        assert!(offered(Family::Tpm12, CKM_RSA_PKCS, CKF_DECRYPT | CKF_SIGN));
        assert!(offered(
            Family::Tpm2,
            CKM_RSA_PKCS_PSS,
            CKF_SIGN | CKF_VERIFY
        ));
        assert!(!offered(Family::Tpm2, CKM_SHA256_RSA_PKCS, CKF_DECRYPT));
        assert!(offered(Family::Tpm2, CKM_RSA_PKCS_OAEP, CKF_ENCRYPT));
    }
}
