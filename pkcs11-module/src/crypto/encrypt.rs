//! C_Encrypt with the key object's RSA public key.

use rand::rngs::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Encrypt};
use zeroize::Zeroizing;

use super::{oaep, rsa_public};
use crate::error::{Pkcs11Error, Result};
use crate::mechanism::CipherMech;

/// The ciphertext (as long as the modulus) of `plaintext`.
pub fn encrypt(
    modulus: &[u8],
    exponent: &[u8],
    mech: &CipherMech,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let key = rsa_public(modulus, exponent)?;
    let k = modulus.len();
    match mech {
        CipherMech::RsaPkcs => {
            if plaintext.len() + 11 > k {
                return Err(Pkcs11Error::DataLenRange);
            }
            key.encrypt(&mut OsRng, Pkcs1v15Encrypt, plaintext)
                .map_err(|e| Pkcs11Error::General(format!("RSA encryption failed: {e}")))
        }
        CipherMech::RsaOaep { hash, label } => {
            let em = oaep::encode(&mut OsRng, k, *hash, label, plaintext)?;
            let m = Zeroizing::new(BigUint::from_bytes_be(&em));
            // The bare RSA public operation: the padding is already in `em`.
            let bytes = m.modpow(key.e(), key.n()).to_bytes_be();
            let mut out = vec![0u8; k.saturating_sub(bytes.len())];
            out.extend(bytes);
            Ok(out)
        }
    }
}
