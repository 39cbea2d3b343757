//! The TPM 1.2 side of the client facade: `TSS KEY BLOB` files and raw TPM_KEY12 blobs,
//! and wrapping an RSA key in software for a 1.2's SRK (TPM_STORE_ASYMKEY sealed to the
//! SRK with OAEP), built by `tpmd-tpm12`'s pure key helpers.

use tpmd_tpm12::codec::consts::{alg, auth_usage, key_usage};
use tpmd_tpm12::codec::{AuthSecret, KeyParms, PcrInfo, PcrSelection, PubKey};
use tpmd_tpm12::keys::{file, wrap};

use super::WrapError;
use crate::marshal::{TPM_ALG_OAEP, TPM_ALG_RSAES, TPM_ALG_SHA1};
use crate::privkey::SoftwareKey;
use crate::public::{KeyParams, TpmPublic};

/// TPMA_OBJECT bits the 2.0-shaped public area of a 1.2 key carries, so that callers
/// (the PKCS#11 module, say) can tell signing keys from decryption keys alike.
const ATTR_USER_WITH_AUTH: u32 = 1 << 6;
const ATTR_DECRYPT: u32 = 1 << 17;
const ATTR_SIGN: u32 = 1 << 18;

/// Whether `bytes` are a TPM 1.2 key file.
pub fn is_key_file(bytes: &[u8]) -> bool {
    file::is_tpm12_key_file(bytes)
}

/// The public key of a TPM 1.2 key file, in the shape TPM 2.0 keys have.
pub fn key_file_public(bytes: &[u8]) -> Result<TpmPublic, String> {
    let key = file::read(bytes).map_err(|e| e.to_string())?.key;
    let parms = key
        .parms
        .rsa_parms()
        .map_err(|e| format!("not an RSA key: {e}"))?;
    let exponent = match parms.exponent_bytes().as_slice() {
        [] | [0x01, 0x00, 0x01] => 0,
        bytes if bytes.len() <= 4 => bytes.iter().fold(0u32, |e, b| (e << 8) | u32::from(*b)),
        _ => return Err("its RSA exponent is longer than 32 bits".into()),
    };
    let attributes = ATTR_USER_WITH_AUTH
        | match key.key_usage {
            key_usage::SIGNING => ATTR_SIGN,
            key_usage::BIND => ATTR_DECRYPT,
            _ => ATTR_SIGN | ATTR_DECRYPT,
        };
    let bits = u16::try_from(key.modulus.len() * 8).map_err(|_| "modulus too long")?;
    let mut public = TpmPublic::plain(
        attributes,
        KeyParams::Rsa {
            bits,
            exponent,
            modulus: key.modulus,
        },
    );
    // A 1.2 key decrypts only with its own scheme, as a 2.0 key with a fixed one does.
    match key.parms.enc_scheme {
        alg::ES_RSAESPKCSV15 => public.scheme = TPM_ALG_RSAES,
        alg::ES_RSAESOAEP_SHA1_MGF1 => {
            public.scheme = TPM_ALG_OAEP;
            public.scheme_hash = TPM_ALG_SHA1;
        }
        _ => {}
    }
    Ok(public)
}

/// Whether using the key needs an auth value (its blob says TPM_AUTH_NEVER otherwise).
pub fn needs_auth(bytes: &[u8]) -> Result<bool, String> {
    let key = file::read(bytes).map_err(|e| e.to_string())?.key;
    Ok(key.auth_data_usage != auth_usage::NEVER)
}

/// Wraps `key` for a 1.2 whose SRK public area is `parent` (as ParentPublic presents it),
/// returning a `TSS KEY BLOB` PEM for tpmd to check and return.
pub fn wrap(key: &SoftwareKey, auth: &[u8], parent: &TpmPublic) -> Result<String, WrapError> {
    wrap_bound(key, auth, parent, Vec::new())
}

/// The TPM_PCR_INFO_LONG that binds a 1.2 key to `values` (SHA-1, one per PCR of `pcrs`
/// in ascending order), for [`wrap_bound`] and Generate.
pub fn pcr_binding(pcrs: &[u32], values: &[[u8; 20]]) -> Result<Vec<u8>, String> {
    let selection = PcrSelection::new(pcrs).map_err(|e| e.to_string())?;
    let digest = selection
        .composite_hash(values)
        .map_err(|e| e.to_string())?;
    Ok(PcrInfo::encode_long(&selection, &digest))
}

/// [`wrap`] for a key the TPM uses only while the PCRs hold the values `pcr_info` (from
/// [`pcr_binding`]) names; empty: no binding.
pub fn wrap_bound(
    key: &SoftwareKey,
    auth: &[u8],
    parent: &TpmPublic,
    pcr_info: Vec<u8>,
) -> Result<String, WrapError> {
    let SoftwareKey::Rsa(rsa_key) = key else {
        return Err(WrapError::Unwrappable(format!(
            "a TPM 1.2 holds only RSA keys, and this is {}; keep it in software or use a TPM 2.0",
            key.describe()
        )));
    };
    let KeyParams::Rsa { modulus, .. } = &parent.key else {
        return Err(WrapError::BadReply(
            "the TPM 1.2 SRK is not an RSA key".into(),
        ));
    };
    let parent = PubKey {
        parms: KeyParms::rsa(
            u32::try_from(modulus.len() * 8).unwrap_or(0),
            alg::ES_RSAESOAEP_SHA1_MGF1,
            alg::SS_NONE,
        ),
        modulus: modulus.clone(),
    };
    let usage_auth = (!auth.is_empty()).then(|| AuthSecret::from_password(auth));
    let wrapped = wrap::wrap_rsa_key_bound(
        &mut rand::thread_rng(),
        rsa_key,
        &parent,
        usage_auth.as_ref(),
        // PKCS#1 v1.5 encryption: UnBind of such a legacy key decrypts standard
        // ciphertexts (TPM 1.2 Part 3, TPM_UnBind action 5); OAEP would mean TSS bind data.
        wrap::Usage::LegacyPkcs1,
        pcr_info,
    )
    .map_err(|e| WrapError::Unwrappable(e.to_string()))?;
    file::write_pem(&wrapped.to_bytes()).map_err(|e| WrapError::Unwrappable(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    use rsa::{Oaep, RsaPrivateKey};
    use sha1::Sha1;
    use tpmd_tpm12::codec::StoreAsymkey;

    use super::*;

    /// Keys from the test data: generating RSA keys in a debug build takes minutes.
    fn rsa_key(name: &str) -> RsaPrivateKey {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        let data = std::fs::read(path).unwrap();
        match crate::privkey::read_private_key(&data, None).unwrap().key {
            SoftwareKey::Rsa(key) => key,
            _ => panic!("{name} is not an RSA key"),
        }
    }

    #[test]
    fn wraps_for_a_tpm12_srk_and_reads_the_file_back() {
        let srk = rsa_key("rsa2048-pkcs1.pem");
        let parent = TpmPublic::standard_srk_with_modulus(&srk.n().to_bytes_be());
        let key = rsa_key("rsa2048-pkcs8.pem");
        let software = SoftwareKey::Rsa(key.clone());

        let pem = wrap(&software, b"", &parent).unwrap();
        assert!(pem.starts_with("-----BEGIN TSS KEY BLOB-----"));
        assert!(is_key_file(pem.as_bytes()));
        assert!(!needs_auth(pem.as_bytes()).unwrap());
        let public = key_file_public(pem.as_bytes()).unwrap();
        assert_eq!(
            public.key,
            KeyParams::Rsa {
                bits: 2048,
                exponent: 0,
                modulus: key.n().to_bytes_be()
            }
        );
        assert_eq!(
            public.attributes & (ATTR_SIGN | ATTR_DECRYPT),
            ATTR_SIGN | ATTR_DECRYPT
        );
        // Wrapped for standard PKCS#1 v1.5 decryption (UnBind of raw data).
        assert_eq!(public.scheme, TPM_ALG_RSAES);
        let blob_parms = file::read(pem.as_bytes()).unwrap().key.parms;
        assert_eq!(blob_parms.enc_scheme, alg::ES_RSAESPKCSV15);

        // Only the SRK can open the private part, and it holds the key's prime.
        let blob = file::read(pem.as_bytes()).unwrap().key;
        let store = srk
            .decrypt(Oaep::new_with_label::<Sha1, _>("TCPA"), &blob.enc_data)
            .unwrap();
        let store = StoreAsymkey::from_bytes(&store).unwrap();
        assert!(key.primes().iter().any(|p| p.to_bytes_be() == store.prime));

        let with_auth = wrap(&software, b"pin", &parent).unwrap();
        assert!(needs_auth(with_auth.as_bytes()).unwrap());
    }

    #[test]
    fn refuses_what_a_tpm12_cannot_hold() {
        let srk = rsa_key("rsa2048-pkcs1.pem");
        let parent = TpmPublic::standard_srk_with_modulus(&srk.n().to_bytes_be());
        let ec = SoftwareKey::EcP256(p256::SecretKey::random(&mut rand::thread_rng()));
        let err = wrap(&ec, b"", &parent).unwrap_err().to_string();
        assert!(err.contains("TPM 1.2 holds only RSA"), "{err}");
        let big = SoftwareKey::Rsa(rsa_key("rsa3072-pkcs1.pem"));
        let err = wrap(&big, b"", &parent).unwrap_err().to_string();
        assert!(err.contains("2048"), "{err}");
    }
}
