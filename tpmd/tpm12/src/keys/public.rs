//! TPM public keys as `rsa` crate keys.

use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};

use super::KeyError;
use crate::codec::PubKey;

/// The RSA public key of a TPM_PUBKEY (or of a TPM_KEY12 via [`crate::codec::Key12::pubkey`]).
pub fn to_rsa(key: &PubKey) -> Result<RsaPublicKey, KeyError> {
    let parms = key.parms.rsa_parms()?;
    let n = BigUint::from_bytes_be(&key.modulus);
    let e = BigUint::from_bytes_be(&parms.exponent_bytes());
    Ok(RsaPublicKey::new(n, e)?)
}

/// The modulus and exponent bytes the TPM would store (exponent empty for 65537).
pub fn rsa_fields(key: &RsaPublicKey) -> (Vec<u8>, Vec<u8>) {
    let e = key.e().to_bytes_be();
    let exponent = if e == [0x01, 0x00, 0x01] {
        Vec::new()
    } else {
        e
    };
    (key.n().to_bytes_be(), exponent)
}
