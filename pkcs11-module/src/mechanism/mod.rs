//! The mechanisms this token offers, what they need from the key and from tpmd:
//! hashes and mechanism kinds here, the per-family lists in `list`, the application's
//! parameters in `params`.

pub mod list;
pub mod params;

pub use list::{allowed_for, info, mechanisms, offered};
pub use params::{cipher_mech, sign_mech, MechanismArg, OaepArg};

use cryptoki_sys::*;
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use tpmd_tpm12::keys::digest_info::Hash as DigestInfoHash;

use crate::error::{Pkcs11Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "sha1",
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }

    /// Digest size in bytes.
    pub fn size(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    pub fn from_len(len: usize) -> Option<Hash> {
        [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512]
            .into_iter()
            .find(|h| h.size() == len)
    }

    /// From a digest mechanism (CK_RSA_PKCS_PSS_PARAMS.hashAlg and the like).
    pub fn from_ckm(m: CK_MECHANISM_TYPE) -> Option<Hash> {
        match m {
            CKM_SHA_1 => Some(Hash::Sha1),
            CKM_SHA256 => Some(Hash::Sha256),
            CKM_SHA384 => Some(Hash::Sha384),
            CKM_SHA512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    pub fn mgf(self) -> CK_ULONG {
        match self {
            Hash::Sha1 => CKG_MGF1_SHA1,
            Hash::Sha256 => CKG_MGF1_SHA256,
            Hash::Sha384 => CKG_MGF1_SHA384,
            Hash::Sha512 => CKG_MGF1_SHA512,
        }
    }

    /// The DER DigestInfo prefix PKCS#1 v1.5 puts before a digest of this hash.
    pub fn digest_info_prefix(self) -> &'static [u8] {
        let hash = match self {
            Hash::Sha1 => DigestInfoHash::Sha1,
            Hash::Sha256 => DigestInfoHash::Sha256,
            Hash::Sha384 => DigestInfoHash::Sha384,
            Hash::Sha512 => DigestInfoHash::Sha512,
        };
        hash.prefix()
    }
}

/// A running hash for the hash-and-sign mechanisms (multi-part C_SignUpdate).
#[derive(Clone)]
pub enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(h: Hash) -> Hasher {
        match h {
            Hash::Sha1 => Hasher::Sha1(Sha1::new()),
            Hash::Sha256 => Hasher::Sha256(Sha256::new()),
            Hash::Sha384 => Hasher::Sha384(Sha384::new()),
            Hash::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// What a signing mechanism does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMech {
    /// CKM_RSA_PKCS: PKCS#1 v1.5 padding of the caller's bytes (normally a DigestInfo).
    RsaPkcs,
    /// CKM_SHAx_RSA_PKCS: hash here, then PKCS#1 v1.5.
    RsaPkcsHash(Hash),
    /// CKM_RSA_PKCS_PSS (caller gives the digest) or CKM_SHAx_RSA_PKCS_PSS (hash here).
    RsaPss { hash: Hash, prehashed: bool },
    /// CKM_ECDSA: the caller gives the digest.
    Ecdsa,
    /// CKM_ECDSA_SHAx: hash here.
    EcdsaHash(Hash),
}

impl SignMech {
    pub fn hasher(self) -> Option<Hasher> {
        match self {
            SignMech::RsaPkcsHash(h)
            | SignMech::EcdsaHash(h)
            | SignMech::RsaPss {
                hash: h,
                prehashed: false,
            } => Some(Hasher::new(h)),
            _ => None,
        }
    }

    pub fn is_rsa(self) -> bool {
        !matches!(self, SignMech::Ecdsa | SignMech::EcdsaHash(_))
    }
}

/// An RSA encryption scheme, for C_Encrypt in software and C_Decrypt in the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherMech {
    /// CKM_RSA_PKCS: RSAES-PKCS1-v1_5.
    RsaPkcs,
    /// CKM_RSA_PKCS_OAEP with MGF1 of the same hash and this label (empty for none).
    RsaOaep { hash: Hash, label: Vec<u8> },
}

/// The digest tpmd's ECDSA takes for CKM_ECDSA input of any length: ECDSA uses the
/// leftmost bits of the hash up to the curve size, and zeros on the left do not change
/// the number, so any input maps to a standard digest size with the same signature.
pub fn ecdsa_digest(data: &[u8], field_size: usize) -> Result<(Hash, Vec<u8>)> {
    if data.is_empty() {
        return Err(Pkcs11Error::DataLenRange);
    }
    let mut d = data[..data.len().min(field_size)].to_vec();
    if let Some(h) = Hash::from_len(d.len()) {
        return Ok((h, d));
    }
    let target = [20, 32, 48, 64]
        .into_iter()
        .find(|n| *n >= d.len())
        .ok_or(Pkcs11Error::DataLenRange)?;
    let mut padded = vec![0; target - d.len()];
    padded.append(&mut d);
    let h = Hash::from_len(target).ok_or(Pkcs11Error::DataLenRange)?;
    Ok((h, padded))
}

/// If `data` is a DigestInfo of a known hash, that hash and the digest: then tpmd's
/// RSASSA signs it with a sign-only key, giving the same bytes as padding it raw.
pub fn parse_digest_info(data: &[u8]) -> Option<(Hash, &[u8])> {
    [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512]
        .into_iter()
        .find_map(|h| {
            let rest = data.strip_prefix(h.digest_info_prefix())?;
            (rest.len() == h.size()).then_some((h, rest))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_input_sizes() {
        let (h, d) = ecdsa_digest(&[1; 32], 32).unwrap();
        assert_eq!((h, d.len()), (Hash::Sha256, 32));
        let (h, d) = ecdsa_digest(&[1; 64], 32).unwrap();
        assert_eq!((h, d.len()), (Hash::Sha256, 32));
        let (h, d) = ecdsa_digest(&[1; 16], 48).unwrap();
        assert_eq!((h, d.len()), (Hash::Sha1, 20));
        assert_eq!(&d[..4], &[0, 0, 0, 0]);
        assert!(ecdsa_digest(&[], 32).is_err());
    }

    #[test]
    fn digest_info() {
        let mut di = Hash::Sha256.digest_info_prefix().to_vec();
        di.extend([7u8; 32]);
        assert_eq!(parse_digest_info(&di), Some((Hash::Sha256, &[7u8; 32][..])));
        assert_eq!(parse_digest_info(&di[1..]), None);
    }
}
