//! The TPM 2.0 cryptographic primitives that both sides of tpmd compute in software:
//! KDFa/KDFe, HMAC, AES-CFB, and secrets encrypted to a TPM key (a duplicate's seed, a
//! session's salt). TPM 2.0 Part 1, "Cryptographic primitives" and "Secret sharing".

use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::marshal::*;
use crate::public::{hash_parts, EccCurve, KeyParams, PublicError, TpmPublic};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// A hash algorithm other than SHA1/SHA256/SHA384/SHA512.
    #[error(transparent)]
    Public(#[from] PublicError),
    /// An AES key of a size AES does not have.
    #[error("an AES key of {0} bits is not 128, 192 or 256")]
    AesKeySize(usize),
    /// A key or operation the primitives refused.
    #[error("{0}")]
    Failed(String),
}

fn unsupported_hash(hash_alg: u16) -> CryptoError {
    PublicError::UnsupportedNameAlg(alg_name(hash_alg)).into()
}

/// The digest size of a TPM hash algorithm.
pub fn digest_len(hash_alg: u16) -> Result<usize, CryptoError> {
    digest_size(hash_alg).ok_or_else(|| unsupported_hash(hash_alg))
}

/// HMAC over the concatenation of `parts`.
pub fn hmac(hash_alg: u16, key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    fn run<M: Mac + hmac::digest::KeyInit>(
        key: &[u8],
        parts: &[&[u8]],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .map_err(|e| CryptoError::Failed(format!("HMAC key: {e}")))?;
        for part in parts {
            mac.update(part);
        }
        Ok(Zeroizing::new(mac.finalize().into_bytes().to_vec()))
    }
    match hash_alg {
        TPM_ALG_SHA1 => run::<Hmac<Sha1>>(key, parts),
        TPM_ALG_SHA256 => run::<Hmac<Sha256>>(key, parts),
        TPM_ALG_SHA384 => run::<Hmac<Sha384>>(key, parts),
        TPM_ALG_SHA512 => run::<Hmac<Sha512>>(key, parts),
        other => Err(unsupported_hash(other)),
    }
}

/// TPM KDFa (SP 800-108 counter mode with HMAC):
/// `HMAC(key, BE32(i) || label || 0x00 || context_u || context_v || BE32(bits))` for
/// i = 1, 2, ..., concatenated and cut to `bits` (the spare high bits of the first byte
/// are cleared when `bits` is not a multiple of 8).
pub fn kdfa(
    hash_alg: u16,
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + 64));
    let mut counter: u32 = 0;
    while out.len() < bytes {
        counter += 1;
        let block = hmac(
            hash_alg,
            key,
            &[
                &counter.to_be_bytes(),
                label.as_bytes(),
                &[0],
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        )?;
        out.extend_from_slice(&block);
    }
    out.truncate(bytes);
    mask_high_bits(&mut out, bits);
    Ok(out)
}

/// TPM KDFe (SP 800-56A concatenation KDF):
/// `H(BE32(i) || z || label || 0x00 || party_u || party_v)` for i = 1, 2, ...,
/// concatenated and cut to `bits`.
pub fn kdfe(
    hash_alg: u16,
    z: &[u8],
    label: &str,
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + 64));
    let mut counter: u32 = 0;
    while out.len() < bytes {
        counter += 1;
        let block = Zeroizing::new(hash_parts(
            hash_alg,
            &[
                &counter.to_be_bytes(),
                z,
                label.as_bytes(),
                &[0],
                party_u,
                party_v,
            ],
        )?);
        out.extend_from_slice(&block);
    }
    out.truncate(bytes);
    mask_high_bits(&mut out, bits);
    Ok(out)
}

fn mask_high_bits(out: &mut [u8], bits: u32) {
    let spare = (8 - bits % 8) % 8;
    if let Some(first) = out.first_mut() {
        *first &= 0xFF >> spare;
    }
}

/// AES-CFB (full-block CFB128) in place, encrypting or decrypting.
fn aes_cfb(key: &[u8], iv: &[u8; 16], buf: &mut [u8], encrypt: bool) -> Result<(), CryptoError> {
    fn run<C>(key: &[u8], iv: &[u8; 16], buf: &mut [u8], encrypt: bool) -> Result<(), CryptoError>
    where
        C: aes::cipher::BlockEncryptMut + aes::cipher::BlockCipher + aes::cipher::KeyInit,
    {
        let err = |e: cfb_mode::cipher::InvalidLength| CryptoError::Failed(format!("AES key: {e}"));
        if encrypt {
            cfb_mode::Encryptor::<C>::new_from_slices(key, iv)
                .map_err(err)?
                .encrypt(buf);
        } else {
            cfb_mode::Decryptor::<C>::new_from_slices(key, iv)
                .map_err(err)?
                .decrypt(buf);
        }
        Ok(())
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, iv, buf, encrypt),
        24 => run::<aes::Aes192>(key, iv, buf, encrypt),
        32 => run::<aes::Aes256>(key, iv, buf, encrypt),
        n => Err(CryptoError::AesKeySize(n * 8)),
    }
}

pub fn aes_cfb_encrypt(key: &[u8], iv: &[u8; 16], buf: &mut [u8]) -> Result<(), CryptoError> {
    aes_cfb(key, iv, buf, true)
}

pub fn aes_cfb_decrypt(key: &[u8], iv: &[u8; 16], buf: &mut [u8]) -> Result<(), CryptoError> {
    aes_cfb(key, iv, buf, false)
}

/// A fresh secret of the key's name-algorithm digest size, encrypted to the TPM key
/// `to` the way TPM2_Import (label "DUPLICATE") or TPM2_StartAuthSession (label
/// "SECRET") expect: RSA-OAEP with the label for an RSA key, ECDH and KDFe for an ECC
/// key. Returns the secret and the TPMU_ENCRYPTED_SECRET contents (no TPM2B size).
pub fn encrypt_secret(
    to: &TpmPublic,
    label: &str,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CryptoError> {
    let hash_alg = to.name_alg;
    let size = digest_len(hash_alg)?;
    match &to.key {
        KeyParams::Rsa {
            exponent, modulus, ..
        } => {
            let mut secret = Zeroizing::new(vec![0u8; size]);
            OsRng.fill_bytes(&mut secret);
            let e = if *exponent == 0 { 65537 } else { *exponent };
            let public =
                rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(modulus), rsa::BigUint::from(e))
                    .map_err(|e| PublicError::InvalidKey {
                        what: "RSA",
                        detail: e.to_string(),
                    })?;
            // OAEP's label is the TPM label with its terminating NUL.
            let label = format!("{label}\0");
            let padding = match hash_alg {
                TPM_ALG_SHA1 => rsa::Oaep::new_with_label::<Sha1, _>(label),
                TPM_ALG_SHA256 => rsa::Oaep::new_with_label::<Sha256, _>(label),
                TPM_ALG_SHA384 => rsa::Oaep::new_with_label::<Sha384, _>(label),
                TPM_ALG_SHA512 => rsa::Oaep::new_with_label::<Sha512, _>(label),
                other => return Err(unsupported_hash(other)),
            };
            let encrypted = public
                .encrypt(&mut OsRng, padding, &secret)
                .map_err(|e| CryptoError::Failed(format!("RSA-OAEP of the secret: {e}")))?;
            Ok((secret, encrypted))
        }
        KeyParams::Ecc { curve, x, .. } => {
            let bits = (size * 8) as u32;
            let (z, eph_x, eph_y) = ecdh_with(to, *curve)?;
            let secret = kdfe(hash_alg, &z, label, &eph_x, x, bits)?;
            let mut encrypted = Vec::with_capacity(eph_x.len() + eph_y.len() + 4);
            put_tpm2b(&mut encrypted, &eph_x);
            put_tpm2b(&mut encrypted, &eph_y);
            Ok((secret, encrypted))
        }
    }
}

/// An ephemeral ECDH with the key's point: the shared x coordinate and the ephemeral
/// public point (x, y).
#[allow(clippy::type_complexity)]
fn ecdh_with(
    to: &TpmPublic,
    curve: EccCurve,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>, Vec<u8>), CryptoError> {
    use p256::pkcs8::DecodePublicKey;
    let spki = to.to_spki_der()?;
    let bad = |e: p256::pkcs8::spki::Error| CryptoError::Failed(e.to_string());
    macro_rules! exchange {
        ($curve:ident) => {{
            use $curve::elliptic_curve::sec1::ToEncodedPoint;
            let point = $curve::PublicKey::from_public_key_der(&spki).map_err(bad)?;
            let eph = $curve::ecdh::EphemeralSecret::random(&mut OsRng);
            let encoded = eph.public_key().to_encoded_point(false);
            let shared = eph.diffie_hellman(&point);
            Ok((
                Zeroizing::new(shared.raw_secret_bytes().to_vec()),
                encoded.x().map(|c| c.to_vec()).unwrap_or_default(),
                encoded.y().map(|c| c.to_vec()).unwrap_or_default(),
            ))
        }};
    }
    match curve {
        EccCurve::NistP256 => exchange!(p256),
        EccCurve::NistP384 => exchange!(p384),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfb_decrypt_inverts_encrypt_with_an_iv() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        let mut buf = b"a parameter longer than one block".to_vec();
        aes_cfb_encrypt(&key, &iv, &mut buf).unwrap();
        assert_ne!(&buf[..], b"a parameter longer than one block");
        aes_cfb_decrypt(&key, &iv, &mut buf).unwrap();
        assert_eq!(&buf[..], b"a parameter longer than one block");
        assert_eq!(
            aes_cfb_encrypt(&[0u8; 5], &iv, &mut buf),
            Err(CryptoError::AesKeySize(40))
        );
    }
}
