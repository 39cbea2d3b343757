//! What the module computes itself: verification and encryption need only the public
//! key, so they run here in software (RustCrypto; the module links no OpenSSL), and
//! OAEP padding is removed here when the TPM can only decrypt raw.

pub mod encrypt;
pub mod oaep;
pub mod verify;

use rsa::{BigUint, RsaPublicKey};

use crate::error::{Pkcs11Error, Result};

/// The RSA public key from a key object's modulus and exponent.
fn rsa_public(modulus: &[u8], exponent: &[u8]) -> Result<RsaPublicKey> {
    RsaPublicKey::new(
        BigUint::from_bytes_be(modulus),
        BigUint::from_bytes_be(exponent),
    )
    .map_err(|e| Pkcs11Error::General(format!("the key's RSA public key is unusable: {e}")))
}
