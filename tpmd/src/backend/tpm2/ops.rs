//! Key operations on top of the resource manager: sign, decrypt, import, generate.
//! Each runs on the TPM thread with the manager borrowed for the whole request.

use std::path::Path;
use std::sync::Arc;

use tpmd_api::dbus::scheme;
use tpmd_api::keyfile::{KeyFileKind, TpmKeyFile};
use tpmd_api::marshal::*;
use tpmd_api::public::{EccCurve, KeyParams, TpmPublic};
use tpmd_tpm2::session::handle_name;
use tpmd_tpm2::session::Crypt;
use tpmd_tpm2::wire::ops::{self, DecryptScheme, SignScheme, Signature};
use tpmd_tpm2::wire::{handle, Command, Response};

use super::blob::KeyBlob;
use super::error::{TpmError, TpmResult};
use super::policy;
use super::resource_manager::{Authorization, PolicySession, ResourceManager};
use crate::backend::{DecryptRequest, SignRequest, MAX_RANDOM_BYTES};

fn hash_alg(name: &str) -> TpmResult<(u16, usize)> {
    match name {
        "sha1" => Ok((TPM_ALG_SHA1, 20)),
        "sha256" => Ok((TPM_ALG_SHA256, 32)),
        "sha384" => Ok((TPM_ALG_SHA384, 48)),
        "sha512" => Ok((TPM_ALG_SHA512, 64)),
        other => Err(TpmError::InvalidArgument(format!(
            "unknown hash {other:?}: use sha1, sha256, sha384 or sha512"
        ))),
    }
}

fn require_attribute(public: &TpmPublic, bit: u32, what: &str) -> TpmResult<()> {
    if public.attributes & bit == 0 || public.attributes & TPMA_OBJECT_RESTRICTED != 0 {
        return Err(TpmError::Unsupported(format!(
            "this {} key is not allowed to {what}",
            public.key_type_name()
        )));
    }
    Ok(())
}

fn parse<T>(result: Result<T, tpmd_tpm2::wire::WireError>) -> TpmResult<T> {
    result.map_err(|e| TpmError::from(tpmd_tpm2::tpm::TpmCallError::from(e)))
}

/// Where a key operation finds the signed policies of keys with a PolicyAuthorize policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyUse<'a> {
    pub policy_dir: Option<&'a Path>,
}

/// Runs the command `build` makes for the key: authorized by its auth value, or, for a
/// key file with a policy, by a policy session that runs it within this request.
fn use_key(
    rm: &mut ResourceManager,
    blob: &Arc<KeyBlob>,
    auth: &[u8],
    crypt: Crypt,
    key_use: KeyUse<'_>,
    build: impl Fn(u32) -> Command,
) -> TpmResult<Response> {
    if blob.policy.is_empty() {
        return rm.with_key(blob, auth, crypt, build);
    }
    // The session is salted when a secret travels: the auth value (in the HMAC after
    // PolicyAuthValue) or encrypted parameters.
    let salted = crypt != Crypt::Nothing || !auth.is_empty();
    let mut satisfy = |rm: &mut ResourceManager, session: &mut PolicySession| {
        policy::run::satisfy(rm, session, blob, key_use.policy_dir)
    };
    rm.with_policy_key(blob, auth, crypt, salted, &mut satisfy, build)
        .map_err(policy::failure::final_command)
}

pub fn sign(
    rm: &mut ResourceManager,
    blob: &Arc<KeyBlob>,
    auth: &[u8],
    req: &SignRequest<'_>,
    key_use: KeyUse<'_>,
) -> TpmResult<Vec<u8>> {
    let public = &blob.public;
    if req.scheme == scheme::RSA_PKCS1_RAW {
        return sign_pkcs1_raw(rm, blob, auth, req.data, key_use);
    }
    require_attribute(public, TPMA_OBJECT_SIGN, "sign")?;
    let (hash, size) = hash_alg(req.hash)?;
    if req.data.len() != size {
        return Err(TpmError::InvalidArgument(format!(
            "a {} digest is {size} bytes, got {}",
            req.hash,
            req.data.len()
        )));
    }
    let (sign_scheme, curve_bytes) = match (&public.key, req.scheme) {
        (KeyParams::Rsa { .. }, scheme::RSA_PKCS1) => (SignScheme::RsaSsa, 0),
        (KeyParams::Rsa { .. }, scheme::RSA_PSS) => (SignScheme::RsaPss, 0),
        (KeyParams::Ecc { curve, .. }, scheme::ECDSA) => (SignScheme::Ecdsa, curve_size(*curve)),
        (_, s) => {
            return Err(TpmError::InvalidArgument(format!(
                "scheme {s:?} does not fit a {} key",
                public.key_type_name()
            )))
        }
    };
    let response = use_key(rm, blob, auth, Crypt::Nothing, key_use, |key| {
        ops::sign(key, req.data, sign_scheme, hash)
    })?;
    match parse(ops::parse_sign(&response))? {
        Signature::Rsa(signature) => Ok(signature),
        Signature::Ecdsa { r, s } => {
            let mut out = pad_left(&r, curve_bytes);
            out.extend(pad_left(&s, curve_bytes));
            Ok(out)
        }
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
    blob: &Arc<KeyBlob>,
    auth: &[u8],
    data: &[u8],
    key_use: KeyUse<'_>,
) -> TpmResult<Vec<u8>> {
    let k = rsa_modulus_len(&blob.public)?;
    require_attribute(
        &blob.public,
        TPMA_OBJECT_DECRYPT,
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
    let response = use_key(rm, blob, auth, Crypt::Nothing, key_use, |key| {
        ops::rsa_decrypt(key, &block, DecryptScheme::Raw, &[])
    })?;
    Ok(pad_left(&parse(ops::parse_rsa_decrypt(&response))?, k))
}

/// RSA decryption; the plaintext comes back encrypted by the session.
pub fn decrypt(
    rm: &mut ResourceManager,
    blob: &Arc<KeyBlob>,
    auth: &[u8],
    req: &DecryptRequest<'_>,
    key_use: KeyUse<'_>,
) -> TpmResult<Vec<u8>> {
    let k = rsa_modulus_len(&blob.public)?;
    require_attribute(&blob.public, TPMA_OBJECT_DECRYPT, "decrypt")?;
    if req.ciphertext.len() != k {
        return Err(TpmError::InvalidArgument(format!(
            "ciphertext for a {}-bit key is {k} bytes, got {}",
            k * 8,
            req.ciphertext.len()
        )));
    }
    let decryption = match req.scheme {
        scheme::RSA_OAEP => {
            check_oaep_label(req.label)?;
            DecryptScheme::Oaep {
                hash_alg: hash_alg(req.hash)?.0,
            }
        }
        scheme::RSA_PKCS1_DECRYPT | scheme::RSA_RAW if !req.label.is_empty() => {
            return Err(TpmError::InvalidArgument(format!(
                "a label is an OAEP parameter; {} takes none",
                req.scheme
            )))
        }
        scheme::RSA_PKCS1_DECRYPT => DecryptScheme::Pkcs1,
        scheme::RSA_RAW => {
            check_raw_allowed(&blob.public)?;
            DecryptScheme::Raw
        }
        other => {
            return Err(TpmError::InvalidArgument(format!(
                "unknown decryption scheme {other:?}: use rsa-oaep, rsa-pkcs1 or rsa-raw"
            )))
        }
    };
    let response = use_key(rm, blob, auth, Crypt::Both, key_use, |key| {
        ops::rsa_decrypt(key, req.ciphertext, decryption, req.label)
    })?;
    let message = parse(ops::parse_rsa_decrypt(&response))?;
    Ok(match decryption {
        // The TPM drops leading zero bytes of the integer; padding schemes need them.
        DecryptScheme::Raw => pad_left(&message, k),
        _ => message,
    })
}

/// TPM2_RSA_Decrypt takes an OAEP label only if its last byte is zero (TPM 2.0 Part 3,
/// RSA_Decrypt: TPM_RC_VALUE otherwise), and uses it with that zero.
fn check_oaep_label(label: &[u8]) -> TpmResult<()> {
    match label.last() {
        None | Some(0) => Ok(()),
        Some(_) => Err(TpmError::InvalidArgument(
            "TPM2_RSA_Decrypt accepts only OAEP labels that end in a zero byte; decrypt with scheme rsa-raw and remove the OAEP padding yourself (the PKCS#11 module does)".into(),
        )),
    }
}

/// A key whose public area fixes a decryption scheme makes the TPM apply that scheme to
/// a "raw" request, so raw decryption is only honest for keys with the NULL scheme.
fn check_raw_allowed(public: &TpmPublic) -> TpmResult<()> {
    if public.scheme == TPM_ALG_NULL {
        return Ok(());
    }
    Err(TpmError::Unsupported(format!(
        "this key's public area fixes its scheme to {}, so the TPM cannot decrypt raw with it; only keys with the NULL scheme (as tpmd makes and wraps them) can",
        tpmd_api::marshal::alg_name(public.scheme)
    )))
}

/// Most random bytes asked of the TPM per command: the size of its largest digest,
/// which is at most what TPM2_GetRandom returns at once.
const RANDOM_PER_COMMAND: u16 = 64;

/// `count` bytes from TPM2_GetRandom, asked for as often as needed. The bytes travel
/// encrypted by the session, as they may become an application's keys.
pub fn random(rm: &mut ResourceManager, count: usize) -> TpmResult<Vec<u8>> {
    if count > MAX_RANDOM_BYTES {
        return Err(TpmError::InvalidArgument(format!(
            "ask for at most {MAX_RANDOM_BYTES} random bytes at a time, not {count}"
        )));
    }
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let want = u16::try_from(count - out.len())
            .unwrap_or(u16::MAX)
            .min(RANDOM_PER_COMMAND);
        let authorization = Authorization::Hmac {
            names: &[],
            auth: &[],
            crypt: Crypt::Response,
        };
        let response = rm.execute(&ops::get_random(want), &authorization)?;
        let bytes = parse(ops::parse_get_random(&response))?;
        if bytes.is_empty() {
            return Err(TpmError::Stack {
                command: "GetRandom",
                detail: "the TPM returned no random bytes".into(),
            });
        }
        let take = bytes.len().min(count - out.len());
        out.extend_from_slice(&bytes[..take]);
    }
    Ok(out)
}

fn loadable_file(parent: u32, empty_auth: bool, public: Vec<u8>, private: Vec<u8>) -> TpmKeyFile {
    TpmKeyFile {
        kind: KeyFileKind::Loadable,
        empty_auth,
        parent,
        public,
        private,
        secret: None,
        policy: Vec::new(),
        auth_policies: Vec::new(),
        description: None,
    }
}

/// Key sizes and curves tpmd asks a TPM about, as (template, words).
fn probe_templates() -> Vec<(TpmPublic, String)> {
    let mut list = Vec::new();
    for bits in [1024u16, 2048, 3072, 4096] {
        let mut t = template_for(KeyParams::Rsa {
            bits,
            exponent: 0,
            modulus: Vec::new(),
        });
        t.attributes |= TPMA_OBJECT_DECRYPT;
        list.push((t, format!("RSA {bits}")));
    }
    for (curve, name) in [(EccCurve::NistP256, "P-256"), (EccCurve::NistP384, "P-384")] {
        list.push((
            template_for(KeyParams::Ecc {
                curve,
                x: Vec::new(),
                y: Vec::new(),
            }),
            format!("ECC {name}"),
        ));
    }
    list
}

/// Refuses a key the TPM cannot hold, naming what it can (TPM2_TestParms), before an
/// Import or Create would fail with a bare response code.
fn check_supported(rm: &mut ResourceManager, public: &TpmPublic) -> TpmResult<()> {
    if rm.supports(&public.marshal_parms())? {
        return Ok(());
    }
    let mut can = Vec::new();
    for (template, words) in probe_templates() {
        if rm.supports(&template.marshal_parms())? {
            can.push(words);
        }
    }
    Err(TpmError::Unsupported(format!(
        "this TPM cannot hold {} keys; it supports {}",
        describe_key(public),
        if can.is_empty() {
            "no RSA or ECC key tpmd knows".to_string()
        } else {
            can.join(", ")
        }
    )))
}

fn describe_key(public: &TpmPublic) -> String {
    match &public.key {
        KeyParams::Rsa { bits, .. } => format!("RSA {bits}-bit"),
        KeyParams::Ecc { curve, .. } => match curve {
            EccCurve::NistP256 => "ECC P-256".into(),
            EccCurve::NistP384 => "ECC P-384".into(),
        },
    }
}

/// TPM2_Import of an importable key file; returns the loadable key file.
pub fn import(rm: &mut ResourceManager, blob: &KeyBlob) -> TpmResult<TpmKeyFile> {
    if !matches!(blob.private, super::blob::KeyPrivate::Importable { .. }) {
        return Err(TpmError::InvalidArgument(
            "this key file is already loadable; there is nothing to import".into(),
        ));
    }
    check_supported(rm, &blob.public)?;
    let private = rm.import(blob)?;
    let mut file = loadable_file(
        blob.parent,
        blob.empty_auth,
        blob.public_bytes.clone(),
        private,
    );
    // The policy travels with the key: the loadable file needs it as much as the
    // importable one did.
    file.policy = blob.policy.clone();
    file.auth_policies = blob.auth_policies.clone();
    file.description = blob.description.clone();
    Ok(file)
}

/// The key types `generate` accepts.
pub const KEY_TYPES: [&str; 4] = ["rsa2048", "rsa3072", "ecc-p256", "ecc-p384"];

/// The template of a new key: signing (and, for RSA, decryption), fixed to this TPM,
/// with `noDA` when it has no auth value so that a lockout never blocks it.
fn template(key_type: &str, empty_auth: bool) -> TpmResult<TpmPublic> {
    let mut attributes = TPMA_OBJECT_FIXED_TPM
        | TPMA_OBJECT_FIXED_PARENT
        | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN
        | TPMA_OBJECT_USER_WITH_AUTH
        | TPMA_OBJECT_SIGN;
    if empty_auth {
        attributes |= TPMA_OBJECT_NO_DA;
    }
    let key = match key_type {
        "rsa2048" | "rsa3072" => {
            attributes |= TPMA_OBJECT_DECRYPT;
            KeyParams::Rsa {
                bits: if key_type == "rsa2048" { 2048 } else { 3072 },
                exponent: 0,
                modulus: Vec::new(),
            }
        }
        "ecc-p256" | "ecc-p384" => KeyParams::Ecc {
            curve: if key_type == "ecc-p256" {
                EccCurve::NistP256
            } else {
                EccCurve::NistP384
            },
            x: Vec::new(),
            y: Vec::new(),
        },
        other => {
            return Err(TpmError::InvalidArgument(format!(
                "unknown key type {other:?}: use one of {}",
                KEY_TYPES.join(", ")
            )))
        }
    };
    let mut public = template_for(key);
    public.attributes = attributes;
    Ok(public)
}

/// Puts `digest` in a template as its authPolicy, without userWithAuth: only the policy
/// authorizes the key (with userWithAuth its auth value alone would, whatever the PCRs
/// hold; a policy that wants the auth value too says so with PolicyAuthValue).
fn with_policy(template: &mut TpmPublic, digest: &[u8]) -> TpmResult<()> {
    let size = digest_size(template.name_alg).unwrap_or_default();
    if digest.len() != size {
        return Err(TpmError::InvalidArgument(format!(
            "a policy digest for a key with name algorithm {} is {size} bytes, got {}",
            alg_name(template.name_alg),
            digest.len()
        )));
    }
    template.auth_policy = digest.to_vec();
    template.attributes &= !TPMA_OBJECT_USER_WITH_AUTH;
    Ok(())
}

/// An unrestricted key's template with the NULL schemes and no policy.
fn template_for(key: KeyParams) -> TpmPublic {
    TpmPublic {
        name_alg: TPM_ALG_SHA256,
        attributes: TPMA_OBJECT_FIXED_TPM
            | TPMA_OBJECT_FIXED_PARENT
            | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN
            | TPMA_OBJECT_USER_WITH_AUTH
            | TPMA_OBJECT_SIGN,
        auth_policy: Vec::new(),
        symmetric: None,
        scheme: TPM_ALG_NULL,
        scheme_hash: TPM_ALG_NULL,
        kdf: TPM_ALG_NULL,
        kdf_hash: TPM_ALG_NULL,
        key,
    }
}

/// TPM2_Create of a new key under `parent`; returns the loadable key file. The new
/// key's auth value travels encrypted (the first parameter of TPM2_Create).
pub fn generate(
    rm: &mut ResourceManager,
    key_type: &str,
    auth: &[u8],
    parent: u32,
    policy_digest: Option<&[u8]>,
) -> TpmResult<TpmKeyFile> {
    let mut template = template(key_type, auth.is_empty())?;
    if let Some(digest) = policy_digest {
        with_policy(&mut template, digest)?;
    }
    check_supported(rm, &template)?;
    let template = template.marshal();
    let crypt = if auth.is_empty() {
        Crypt::Nothing
    } else {
        Crypt::Command
    };
    let response = rm
        .with_parent(parent, crypt, |parent_handle| {
            ops::create(parent_handle, auth, &template)
        })
        .map_err(|e| match e.response_code() {
            Some(rc) if rc.is_unsupported() => {
                TpmError::Unsupported(format!("this TPM cannot make {key_type} keys ({rc})"))
            }
            _ => e,
        })?;
    let created = parse(ops::parse_create(&response))?;
    Ok(loadable_file(
        parent,
        auth.is_empty(),
        created.public,
        created.private,
    ))
}

/// TPM2_ObjectChangeAuth: the key file with `new_auth` instead of `old_auth`. A key
/// keeps its dictionary-attack protection as it was made, so a change between an empty
/// and a non-empty auth value is refused with the reason.
pub fn change_auth(
    rm: &mut ResourceManager,
    blob: &Arc<KeyBlob>,
    old_auth: &[u8],
    new_auth: &[u8],
) -> TpmResult<TpmKeyFile> {
    let no_da = blob.public.attributes & TPMA_OBJECT_NO_DA != 0;
    if old_auth.is_empty() != new_auth.is_empty() || (no_da && !new_auth.is_empty()) {
        return Err(TpmError::InvalidArgument(if no_da {
            "this key was made without an auth value, so the TPM does not count wrong guesses of one (noDA); wrap the original key again with `tpm-keyctl wrap -a`".into()
        } else {
            "a key with an auth value is protected against guessing and stops working while the TPM is in dictionary-attack lockout; to have a key without one, wrap the original key again without `-a`".into()
        }));
    }
    if !handle::is_persistent(blob.parent) {
        return Err(TpmError::Unsupported(format!(
            "changing the auth value of a key under {:#010x} is not supported; wrap the original key again",
            blob.parent
        )));
    }
    let parent_name = rm.persistent_name(blob.parent)?;
    let parent = blob.parent;
    let response = rm.with_key_and(
        blob,
        old_auth,
        Crypt::Command,
        Some((parent, &parent_name)),
        |key| ops::object_change_auth(key, parent, new_auth),
    )?;
    let private = parse(ops::parse_object_change_auth(&response))?;
    let mut file = loadable_file(
        blob.parent,
        new_auth.is_empty(),
        blob.public_bytes.clone(),
        private,
    );
    file.policy = blob.policy.clone();
    file.auth_policies = blob.auth_policies.clone();
    file.description = blob.description.clone();
    Ok(file)
}

/// The parent's public area as TPM2B_PUBLIC.
pub fn parent_public(rm: &mut ResourceManager, parent: u32) -> TpmResult<Vec<u8>> {
    rm.persistent_public(parent)
}

/// Creates the SRK at 0x81000001 if absent; true if it was created.
pub fn create_srk(rm: &mut ResourceManager) -> TpmResult<bool> {
    let created = rm.with_main_tpm(|tpm| {
        tpmd_tpm2::srk::provision_srk(tpm).map_err(|e| match e {
            tpmd_tpm2::srk::SrkError::Tpm(call) => TpmError::from(call),
            other => TpmError::Stack {
                command: "CreatePrimary",
                detail: other.to_string(),
            },
        })
    })?;
    if created {
        rm.forget_persistent();
    }
    Ok(created)
}

/// TPM2_DictionaryAttackLockReset with the lockout hierarchy's auth value, which
/// travels only inside a salted HMAC.
pub fn reset_lockout(rm: &mut ResourceManager, lockout_auth: &[u8]) -> TpmResult<()> {
    let name = handle_name(handle::LOCKOUT);
    let names = [name.as_slice()];
    let authorization = Authorization::Hmac {
        names: &names,
        auth: lockout_auth,
        crypt: Crypt::Nothing,
    };
    rm.execute(&ops::dictionary_attack_lock_reset(), &authorization)
        .map(|_| ())
        .map_err(|e| match e {
            TpmError::AuthFailed { .. } => TpmError::InvalidArgument(
                "wrong lockout auth value; the TPM now refuses lockout authorization until its lockoutRecovery time passes".into(),
            ),
            other => other,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_decryption_only_with_the_null_scheme_and_labels_only_zero_terminated() {
        let mut public = template("rsa2048", true).unwrap();
        assert!(check_raw_allowed(&public).is_ok());
        public.scheme = TPM_ALG_OAEP;
        public.scheme_hash = TPM_ALG_SHA256;
        let err = check_raw_allowed(&public).unwrap_err();
        assert!(matches!(err, TpmError::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("OAEP"), "{err}");
        assert!(check_oaep_label(b"").is_ok());
        assert!(check_oaep_label(b"label\0").is_ok());
        assert!(matches!(
            check_oaep_label(b"label"),
            Err(TpmError::InvalidArgument(_))
        ));
    }
}
