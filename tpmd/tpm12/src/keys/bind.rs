//! RSA-OAEP with the TPM's "TCPA" label, and TPM_BOUND_DATA: what UnBind expects from
//! an OAEP bind or legacy key.

use rand::{CryptoRng, RngCore};
use rsa::{Oaep, RsaPublicKey};
use sha1::Sha1;

use super::KeyError;
use crate::codec::consts::{payload, STRUCT_VER_1_1};

/// RSA-OAEP (SHA-1, MGF1-SHA-1, label "TCPA") as the TPM decrypts it.
pub fn oaep_tcpa_encrypt<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &RsaPublicKey,
    data: &[u8],
) -> Result<Vec<u8>, KeyError> {
    Ok(key.encrypt(rng, Oaep::new_with_label::<Sha1, _>("TCPA"), data)?)
}

/// Most plaintext bytes a key of `modulus_len` bytes can bind.
pub fn max_bind_len(modulus_len: usize) -> usize {
    modulus_len.saturating_sub(2 * 20 + 2 + 5)
}

/// Binds `data` to a key: TPM_BOUND_DATA (version 1.1, TPM_PT_BIND, data) encrypted
/// with OAEP "TCPA". `TPM_UnBind` returns `data`.
pub fn bind<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &RsaPublicKey,
    data: &[u8],
) -> Result<Vec<u8>, KeyError> {
    use rsa::traits::PublicKeyParts;
    let max = max_bind_len(key.size());
    if data.len() > max {
        return Err(KeyError::TooLong {
            len: data.len(),
            max,
        });
    }
    let mut bound = zeroize::Zeroizing::new(Vec::with_capacity(5 + data.len()));
    bound.extend_from_slice(&STRUCT_VER_1_1);
    bound.push(payload::BIND);
    bound.extend_from_slice(data);
    oaep_tcpa_encrypt(rng, key, &bound)
}
