//! Key operations on top of the resource manager: sign, decrypt, import, generate.
//! Each runs on the TPM thread with the manager borrowed for the whole request.

use tpmd_api::dbus::scheme;
use tpmd_api::keyfile::{KeyFileKind, TpmKeyFile};
use tpmd_api::marshal::tpm2b;
use tpmd_api::public::{EccCurve, KeyParams};
use tpmd_api::TpmPublic;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve as TssEccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{
    Auth, Data, Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket,
    KeyDerivationFunctionScheme, Private, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyRsa, PublicRsaParametersBuilder, RsaDecryptionScheme, RsaExponent, RsaScheme,
    Signature, SignatureScheme,
};
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use super::blob::KeyBlob;
use super::error::{TpmError, TpmResult};
use super::resource_manager::ResourceManager;
use super::session::Crypt;
use crate::backend::SignRequest;

const ATTR_SIGN: u32 = 1 << 18;
const ATTR_DECRYPT: u32 = 1 << 17;
const ATTR_RESTRICTED: u32 = 1 << 16;

fn hash_alg(name: &str) -> TpmResult<(HashingAlgorithm, usize)> {
    match name {
        "sha1" => Ok((HashingAlgorithm::Sha1, 20)),
        "sha256" => Ok((HashingAlgorithm::Sha256, 32)),
        "sha384" => Ok((HashingAlgorithm::Sha384, 48)),
        "sha512" => Ok((HashingAlgorithm::Sha512, 64)),
        other => Err(TpmError::InvalidArgument(format!(
            "unknown hash {other:?}: use sha1, sha256, sha384 or sha512"
        ))),
    }
}

fn public_of(file: &TpmKeyFile) -> TpmResult<TpmPublic> {
    file.public_area()
        .map_err(|e| TpmError::BadKeyFile(e.to_string()))
}

fn require_attribute(public: &TpmPublic, bit: u32, what: &str) -> TpmResult<()> {
    if public.attributes & bit == 0 || public.attributes & ATTR_RESTRICTED != 0 {
        return Err(TpmError::Unsupported(format!(
            "this {} key is not allowed to {what}",
            public.key_type_name()
        )));
    }
    Ok(())
}

fn null_ticket() -> TpmResult<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(|e| TpmError::Stack {
        command: "Sign",
        detail: e.to_string(),
    })
}

pub fn sign(
    rm: &mut ResourceManager,
    file: &TpmKeyFile,
    blob: &KeyBlob,
    auth: &[u8],
    req: &SignRequest<'_>,
) -> TpmResult<Vec<u8>> {
    let public = public_of(file)?;
    if req.scheme == scheme::RSA_PKCS1_RAW {
        return sign_pkcs1_raw(rm, &public, blob, auth, req.data);
    }
    require_attribute(&public, ATTR_SIGN, "sign")?;
    let (hash, size) = hash_alg(req.hash)?;
    if req.data.len() != size {
        return Err(TpmError::InvalidArgument(format!(
            "a {} digest is {size} bytes, got {}",
            req.hash,
            req.data.len()
        )));
    }
    let curve_bytes = match (&public.key, req.scheme) {
        (KeyParams::Rsa { .. }, scheme::RSA_PKCS1 | scheme::RSA_PSS) => 0,
        (KeyParams::Ecc { curve, .. }, scheme::ECDSA) => curve_size(*curve),
        (_, s) => {
            return Err(TpmError::InvalidArgument(format!(
                "scheme {s:?} does not fit a {} key",
                public.key_type_name()
            )))
        }
    };
    let hash_scheme = HashScheme::new(hash);
    let sig_scheme = match req.scheme {
        scheme::RSA_PKCS1 => SignatureScheme::RsaSsa { hash_scheme },
        scheme::RSA_PSS => SignatureScheme::RsaPss { hash_scheme },
        _ => SignatureScheme::EcDsa { hash_scheme },
    };
    let digest = Digest::try_from(req.data.to_vec())
        .map_err(|_| TpmError::InvalidArgument("digest too long".into()))?;
    let ticket = null_ticket()?;
    let signature = rm.with_key(blob, auth, Crypt::Nothing, "Sign", |ctx, key| {
        ctx.sign(key, digest.clone(), sig_scheme, ticket.clone())
    })?;
    match signature {
        Signature::RsaSsa(s) | Signature::RsaPss(s) => Ok(s.signature().value().to_vec()),
        Signature::EcDsa(s) => {
            let mut out = pad_left(s.signature_r().value(), curve_bytes);
            out.extend(pad_left(s.signature_s().value(), curve_bytes));
            Ok(out)
        }
        _ => Err(TpmError::Stack {
            command: "Sign",
            detail: "unexpected signature type".into(),
        }),
    }
}

fn curve_size(curve: EccCurve) -> usize {
    match curve {
        EccCurve::NistP256 => 32,
        EccCurve::NistP384 => 48,
    }
}

fn pad_left(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = vec![0; size.saturating_sub(bytes.len())];
    out.extend_from_slice(bytes);
    out
}

fn rsa_modulus_len(public: &TpmPublic) -> TpmResult<usize> {
    match &public.key {
        KeyParams::Rsa { bits, .. } => Ok(usize::from(*bits) / 8),
        KeyParams::Ecc { .. } => Err(TpmError::InvalidArgument(format!(
            "this is a {} key, not an RSA key",
            public.key_type_name()
        ))),
    }
}

/// PKCS#1 v1.5 type-1 padding of caller data, then a raw RSA private operation: what
/// PKCS#11's CKM_RSA_PKCS signs (a DigestInfo the TPM's RSASSA would rebuild itself).
fn sign_pkcs1_raw(
    rm: &mut ResourceManager,
    public: &TpmPublic,
    blob: &KeyBlob,
    auth: &[u8],
    data: &[u8],
) -> TpmResult<Vec<u8>> {
    let k = rsa_modulus_len(public)?;
    require_attribute(
        public,
        ATTR_DECRYPT,
        "do raw RSA (it lacks the decrypt attribute)",
    )?;
    if data.len() + 11 > k {
        return Err(TpmError::InvalidArgument(format!(
            "{} bytes is too long to sign with a {}-bit key",
            data.len(),
            k * 8
        )));
    }
    let mut block = vec![0x00, 0x01];
    block.resize(k - data.len() - 1, 0xFF);
    block.push(0x00);
    block.extend_from_slice(data);
    let input = PublicKeyRsa::try_from(block)
        .map_err(|_| TpmError::InvalidArgument("RSA block too large".into()))?;
    let out = rm.with_key(blob, auth, Crypt::Nothing, "RSA_Decrypt", |ctx, key| {
        ctx.rsa_decrypt(
            key,
            input.clone(),
            RsaDecryptionScheme::Null,
            Data::default(),
        )
    })?;
    Ok(pad_left(out.value(), k))
}

pub fn decrypt(
    rm: &mut ResourceManager,
    file: &TpmKeyFile,
    blob: &KeyBlob,
    auth: &[u8],
    scheme_name: &str,
    hash: &str,
    ciphertext: &[u8],
) -> TpmResult<Vec<u8>> {
    let public = public_of(file)?;
    let k = rsa_modulus_len(&public)?;
    require_attribute(&public, ATTR_DECRYPT, "decrypt")?;
    if ciphertext.len() != k {
        return Err(TpmError::InvalidArgument(format!(
            "ciphertext for a {}-bit key is {k} bytes, got {}",
            k * 8,
            ciphertext.len()
        )));
    }
    let decryption = match scheme_name {
        scheme::RSA_OAEP => RsaDecryptionScheme::Oaep(HashScheme::new(hash_alg(hash)?.0)),
        scheme::RSA_PKCS1_DECRYPT => RsaDecryptionScheme::RsaEs,
        other => {
            return Err(TpmError::InvalidArgument(format!(
                "unknown decryption scheme {other:?}: use rsa-oaep or rsa-pkcs1"
            )))
        }
    };
    let input = PublicKeyRsa::try_from(ciphertext.to_vec())
        .map_err(|_| TpmError::InvalidArgument("ciphertext too large".into()))?;
    let out = rm.with_key(blob, auth, Crypt::Both, "RSA_Decrypt", |ctx, key| {
        ctx.rsa_decrypt(key, input.clone(), decryption, Data::default())
    })?;
    Ok(out.value().to_vec())
}

fn marshal_public(public: &Public) -> TpmResult<Vec<u8>> {
    public
        .marshall()
        .map(|b| tpm2b(&b))
        .map_err(|e| TpmError::Stack {
            command: "Marshal",
            detail: e.to_string(),
        })
}

fn loadable_file(parent: u32, empty_auth: bool, public: Vec<u8>, private: &Private) -> TpmKeyFile {
    TpmKeyFile {
        kind: KeyFileKind::Loadable,
        empty_auth,
        parent,
        public,
        private: tpm2b(private.value()),
        secret: None,
        has_policy: false,
    }
}

/// TPM2_Import of an importable key file; returns the loadable key file.
pub fn import(
    rm: &mut ResourceManager,
    file: &TpmKeyFile,
    blob: &KeyBlob,
) -> TpmResult<TpmKeyFile> {
    if file.kind != KeyFileKind::Importable {
        return Err(TpmError::InvalidArgument(
            "this key file is already loadable; there is nothing to import".into(),
        ));
    }
    let private = rm.import(blob)?;
    Ok(loadable_file(
        file.parent,
        file.empty_auth,
        file.public.clone(),
        &private,
    ))
}

/// The key types `generate` accepts.
pub const KEY_TYPES: [&str; 4] = ["rsa2048", "rsa3072", "ecc-p256", "ecc-p384"];

fn template(key_type: &str, empty_auth: bool) -> TpmResult<Public> {
    let is_rsa = key_type.starts_with("rsa");
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(empty_auth)
        .with_sign_encrypt(true)
        .with_decrypt(is_rsa)
        .build();
    let builder = PublicBuilder::new()
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes.map_err(stack("template"))?);
    let builder = match key_type {
        "rsa2048" | "rsa3072" => {
            let bits = if key_type == "rsa2048" {
                RsaKeyBits::Rsa2048
            } else {
                RsaKeyBits::Rsa3072
            };
            builder
                .with_public_algorithm(PublicAlgorithm::Rsa)
                .with_rsa_parameters(
                    PublicRsaParametersBuilder::new()
                        .with_scheme(RsaScheme::Null)
                        .with_key_bits(bits)
                        .with_exponent(RsaExponent::default())
                        .with_is_signing_key(true)
                        .with_is_decryption_key(true)
                        .with_restricted(false)
                        .build()
                        .map_err(stack("template"))?,
                )
                .with_rsa_unique_identifier(PublicKeyRsa::default())
        }
        "ecc-p256" | "ecc-p384" => {
            let curve = if key_type == "ecc-p256" {
                TssEccCurve::NistP256
            } else {
                TssEccCurve::NistP384
            };
            builder
                .with_public_algorithm(PublicAlgorithm::Ecc)
                .with_ecc_parameters(
                    PublicEccParametersBuilder::new()
                        .with_ecc_scheme(EccScheme::Null)
                        .with_curve(curve)
                        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                        // The builder's check wants a signing scheme for signing keys; a
                        // NULL scheme lets each Sign choose, and the object attributes
                        // above are what the TPM enforces.
                        .with_is_signing_key(false)
                        .with_is_decryption_key(false)
                        .with_restricted(false)
                        .build()
                        .map_err(stack("template"))?,
                )
                .with_ecc_unique_identifier(EccPoint::default())
        }
        other => {
            return Err(TpmError::InvalidArgument(format!(
                "unknown key type {other:?}: use one of {}",
                KEY_TYPES.join(", ")
            )))
        }
    };
    builder.build().map_err(stack("template"))
}

fn stack(command: &'static str) -> impl Fn(tss_esapi::Error) -> TpmError {
    move |e| TpmError::Stack {
        command,
        detail: e.to_string(),
    }
}

/// TPM2_Create of a new key under `parent`; returns the loadable key file.
pub fn generate(
    rm: &mut ResourceManager,
    key_type: &str,
    auth: &[u8],
    parent: u32,
) -> TpmResult<TpmKeyFile> {
    let template = template(key_type, auth.is_empty())?;
    // The new key's auth value travels in TPM2_Create's first parameter.
    let crypt = if auth.is_empty() {
        Crypt::Nothing
    } else {
        Crypt::Both
    };
    let auth_value = if auth.is_empty() {
        None
    } else {
        Some(Auth::try_from(auth.to_vec()).map_err(|_| {
            TpmError::InvalidArgument("the auth value is longer than 64 bytes".into())
        })?)
    };
    let created = rm
        .with_parent(parent, crypt, "Create", |ctx, parent_key| {
            ctx.create(
                parent_key,
                template.clone(),
                auth_value.clone(),
                None,
                None,
                None,
            )
        })
        .map_err(|e| match e.response_code() {
            Some(rc) if rc.is_unsupported() => {
                TpmError::Unsupported(format!("this TPM cannot make {key_type} keys ({rc})"))
            }
            _ => e,
        })?;
    Ok(loadable_file(
        parent,
        auth.is_empty(),
        marshal_public(&created.out_public)?,
        &created.out_private,
    ))
}

/// The parent's public area as TPM2B_PUBLIC.
pub fn parent_public(rm: &mut ResourceManager, parent: u32) -> TpmResult<Vec<u8>> {
    let handle = rm.persistent_handle(parent)?;
    let (public, _, _) = rm.retrying("ReadPublic", |ctx| {
        ctx.execute_without_session(|ctx| ctx.read_public(handle))
    })?;
    marshal_public(&public)
}

/// Creates the SRK at 0x81000001 if absent; true if it was created.
pub fn create_srk(rm: &mut ResourceManager) -> TpmResult<bool> {
    let created = rm.recovering(|rm| {
        let ctx = rm.context()?;
        ctx.clear_sessions();
        tpmd_tpm2::srk::ensure_srk(ctx).map_err(|e| TpmError::Stack {
            command: "CreatePrimary",
            detail: e.to_string(),
        })
    })?;
    if created {
        rm.forget_persistent();
    }
    Ok(created)
}
