//! Software wrap: turns an RSA private key into a TPM_KEY12 loadable under a given
//! parent (normally the SRK), without the TPM. The private part (TPM_STORE_ASYMKEY) is
//! encrypted to the parent's public key with RSA-OAEP(SHA-1, "TCPA").
//!
//! The key is migratable (a software key cannot carry the TPM's tpmProof) with a random
//! migration secret nobody keeps, TPM_KEY_LEGACY (sign and decrypt, as
//! openssl_tpm_engine's `create_tpm_key -w` makes them), OAEP encryption and the DER
//! signature scheme so any DigestInfo (SHA-256/512) can be signed.

use rand::{CryptoRng, RngCore};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::RsaPrivateKey;

use super::bind::oaep_tcpa_encrypt;
use super::public::{rsa_fields, to_rsa};
use super::KeyError;
use crate::codec::consts::{alg, auth_usage, key_flags, key_usage};
use crate::codec::key::{Key12, KeyParms, PubKey, RsaKeyParms, StoreAsymkey};
use crate::codec::wire::Writer;
use crate::codec::AuthSecret;

/// What a wrapped or generated key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usage {
    /// Sign (DER scheme) and decrypt (UnBind, OAEP): TPM_KEY_LEGACY.
    #[default]
    Legacy,
    /// Sign only: TPM_KEY_SIGNING.
    Signing,
    /// Sign (DER scheme) and decrypt standard RSAES-PKCS1-v1_5 ciphertexts: TPM_KEY_LEGACY
    /// with TPM_ES_RSAESPKCSv15, for which UnBind returns the plaintext as is (what
    /// PKCS#11's CKM_RSA_PKCS and TLS RSA key exchange need; a TPM 1.2 cannot decrypt
    /// standard OAEP).
    LegacyPkcs1,
}

impl Usage {
    pub fn key_usage(self) -> u16 {
        match self {
            Usage::Legacy | Usage::LegacyPkcs1 => key_usage::LEGACY,
            Usage::Signing => key_usage::SIGNING,
        }
    }

    fn enc_scheme(self) -> u16 {
        match self {
            Usage::Legacy => alg::ES_RSAESOAEP_SHA1_MGF1,
            Usage::LegacyPkcs1 => alg::ES_RSAESPKCSV15,
            Usage::Signing => alg::ES_NONE,
        }
    }
}

/// The RSA parameters of a key of `bits` with exponent bytes (empty: 65537).
fn parms(bits: u32, exponent: Vec<u8>, usage: Usage) -> KeyParms {
    let mut w = Writer::new();
    RsaKeyParms {
        key_length: bits,
        num_primes: 2,
        exponent,
    }
    .encode(&mut w);
    KeyParms {
        algorithm: alg::RSA,
        enc_scheme: usage.enc_scheme(),
        sig_scheme: alg::SS_RSASSAPKCS1V15_DER,
        parms: w.into_vec(),
    }
}

/// TPM_AUTH_ALWAYS for a key with a password, TPM_AUTH_NEVER without one (as
/// openssl_tpm_engine's `create_tpm_key` makes keys unless given `-a`): clients can tell
/// from the blob whether to ask for a password, and signing needs no HMAC.
fn auth_data_usage(needs_auth: bool) -> u8 {
    if needs_auth {
        auth_usage::ALWAYS
    } else {
        auth_usage::NEVER
    }
}

/// A CreateWrapKey template: an RSA key of `bits` generated inside the TPM.
pub fn generate_template(bits: u32, usage: Usage, migratable: bool, needs_auth: bool) -> Key12 {
    let flags = if migratable { key_flags::MIGRATABLE } else { 0 };
    Key12::template(
        usage.key_usage(),
        flags,
        auth_data_usage(needs_auth),
        parms(bits, Vec::new(), usage),
    )
}

/// Wraps `key` for `parent`. `usage_auth` is the key's future auth value; `None` makes a
/// key that needs no authorization (TPM_AUTH_NEVER, usage secret the well-known one).
pub fn wrap_rsa_key<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &RsaPrivateKey,
    parent: &PubKey,
    usage_auth: Option<&AuthSecret>,
    usage: Usage,
) -> Result<Key12, KeyError> {
    wrap_rsa_key_bound(rng, key, parent, usage_auth, usage, Vec::new())
}

/// [`wrap_rsa_key`] for a key the TPM uses only under the PCR values `pcr_info` (a
/// TPM_PCR_INFO_LONG, see [`crate::codec::PcrInfo::encode_long`]) names; the private
/// part's digest of the public data covers it, so it cannot be stripped.
pub fn wrap_rsa_key_bound<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &RsaPrivateKey,
    parent: &PubKey,
    usage_auth: Option<&AuthSecret>,
    usage: Usage,
    pcr_info: Vec<u8>,
) -> Result<Key12, KeyError> {
    let bits = key.size() * 8;
    if !(512..=2048).contains(&bits) || key.primes().len() != 2 {
        return Err(KeyError::KeySize { bits });
    }
    if parent.parms.enc_scheme != alg::ES_RSAESOAEP_SHA1_MGF1 || parent.modulus.len() < 256 {
        return Err(KeyError::BadParent);
    }
    let parent_key = to_rsa(parent)?;
    let (modulus, exponent) = rsa_fields(key.as_ref());
    let mut wrapped = Key12::template(
        usage.key_usage(),
        key_flags::MIGRATABLE,
        auth_data_usage(usage_auth.is_some()),
        parms(u32::try_from(bits).unwrap_or(0), exponent, usage),
    );
    wrapped.modulus = modulus;
    wrapped.pcr_info = pcr_info;
    let mut migration_auth = [0u8; 20];
    rng.fill_bytes(&mut migration_auth);
    let well_known = crate::codec::WellKnown::Zeros.secret();
    let store = StoreAsymkey {
        usage_auth: *usage_auth.unwrap_or(&well_known).as_bytes(),
        migration_auth,
        pub_data_digest: wrapped.pub_data_digest(),
        prime: key.primes()[0].to_bytes_be(),
    };
    zeroize::Zeroize::zeroize(&mut migration_auth);
    wrapped.enc_data = oaep_tcpa_encrypt(rng, &parent_key, &store.to_bytes())?;
    Ok(wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::{Oaep, RsaPublicKey};
    use sha1::Sha1;

    #[test]
    fn wrap_decrypts_to_a_consistent_store_asymkey() {
        let mut rng = rand::thread_rng();
        let parent_priv = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let (modulus, _) = rsa_fields(&RsaPublicKey::from(&parent_priv));
        let parent = PubKey {
            parms: KeyParms::rsa(2048, alg::ES_RSAESOAEP_SHA1_MGF1, alg::SS_NONE),
            modulus,
        };
        let key = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let auth = AuthSecret::from_password(b"pw");
        let wrapped = wrap_rsa_key(&mut rng, &key, &parent, Some(&auth), Usage::Legacy).unwrap();
        assert_eq!(wrapped.key_usage, key_usage::LEGACY);
        assert_eq!(wrapped.auth_data_usage, auth_usage::ALWAYS);
        assert_eq!(wrapped.key_flags, key_flags::MIGRATABLE);
        assert_eq!(wrapped.parms.sig_scheme, alg::SS_RSASSAPKCS1V15_DER);
        assert_eq!(wrapped.parms.rsa_parms().unwrap().key_length, 1024);
        let plain = parent_priv
            .decrypt(Oaep::new_with_label::<Sha1, _>("TCPA"), &wrapped.enc_data)
            .unwrap();
        let store = StoreAsymkey::from_bytes(&plain).unwrap();
        assert_eq!(&store.usage_auth, auth.as_bytes());
        assert_eq!(store.pub_data_digest, wrapped.pub_data_digest());
        assert_eq!(store.prime, key.primes()[0].to_bytes_be());
        assert_eq!(wrapped.modulus, key.n().to_bytes_be());
        // Round trip through bytes.
        assert_eq!(Key12::from_bytes(&wrapped.to_bytes()).unwrap(), wrapped);
    }
}
