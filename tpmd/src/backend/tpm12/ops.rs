//! Key operations on a TPM 1.2: sign (DER scheme: any DigestInfo; SHA-1 scheme: SHA-1
//! only), decrypt through UnBind, generate with CreateWrapKey, import (check that a
//! software-wrapped key loads), the SRK public key, ownership.

use tpmd_api::dbus::scheme;
use tpmd_api::TpmPublic;
use tpmd_tpm12::codec::consts::{alg, kh};
use tpmd_tpm12::codec::rc;
use tpmd_tpm12::codec::{AuthSecret, PcrInfo, WellKnown};
use tpmd_tpm12::keys::digest_info::{digest_info, Hash};
use tpmd_tpm12::keys::file;
use tpmd_tpm12::keys::wrap::{generate_template, Usage};

use super::error::convert;
use super::key::Key;
use super::resource_manager::{Failure, ResourceManager};
use crate::backend::{DecryptRequest, SignRequest, TpmError, TpmResult, MAX_RANDOM_BYTES};

/// What Generate accepts on a TPM 1.2.
pub const KEY_TYPES: [&str; 2] = ["rsa2048", "rsa1024"];

fn unsupported(what: &str) -> TpmError {
    TpmError::Unsupported(format!("{what} is not supported by a TPM 1.2"))
}

fn hash_of(name: &str) -> TpmResult<Hash> {
    match name {
        "sha1" => Ok(Hash::Sha1),
        "sha256" => Ok(Hash::Sha256),
        "sha384" => Ok(Hash::Sha384),
        "sha512" => Ok(Hash::Sha512),
        other => Err(TpmError::InvalidArgument(format!(
            "unknown hash {other:?}: use sha1, sha256, sha384 or sha512"
        ))),
    }
}

/// Checks the parent handle a client names: the TPM 1.2 SRK, or the default SRK handle
/// clients use on either family.
pub fn check_parent(parent: u32) -> TpmResult<()> {
    if parent == kh::SRK || parent == tpmd_api::DEFAULT_SRK_HANDLE {
        Ok(())
    } else {
        Err(TpmError::Unsupported(format!(
            "parent {parent:#010x}: a TPM 1.2 keeps keys only under its SRK ({:#010x})",
            kh::SRK
        )))
    }
}

/// A lockout note for wrong-auth messages.
pub fn lockout_note(rm: &mut ResourceManager) -> String {
    match rm.tpm().da_info() {
        Ok(info) => match (info.current_count, info.threshold) {
            (Some(n), Some(max)) => format!(" (TPM dictionary-attack counter {n} of {max})"),
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// A failed key operation: a failed load is reported as LoadKey2 (so a key wrapped for
/// another SRK reads as such), anything else as `command`.
fn key_fail(rm: &mut ResourceManager, command: &'static str, f: Failure) -> TpmError {
    let command = if f.during_load { "LoadKey2" } else { command };
    fail(rm, command, f.error)
}

/// A key bound to PCR values the TPM no longer has: which PCRs, and what to do. (A TPM
/// 1.2 keeps only the composite hash of the values, so which of them changed is unknown.)
/// Like a TPM 2.0 policy failure, not an auth failure: the DA budget does not count it.
fn name_changed_pcrs(key: &Key, e: TpmError) -> TpmError {
    let TpmError::Command { code, .. } = &e else {
        return e;
    };
    if *code != rc::WRONGPCRVAL {
        return e;
    }
    let pcrs = match key.key.pcr_info() {
        Ok(Some(info)) => info
            .release
            .pcrs
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => "?".into(),
    };
    TpmError::PolicyFailed(format!(
        "this key is bound to PCRs sha1:{pcrs}, which no longer hold the values it was made for (a firmware, bootloader or kernel change, or another boot path); re-wrap the key from its original with `tpm-keyctl wrap --pcr sha1:{pcrs}` (a TPM 1.2 has no signed policies)"
    ))
}

fn fail(
    rm: &mut ResourceManager,
    command: &'static str,
    e: tpmd_tpm12::client::ClientError,
) -> TpmError {
    let auth = e.is_auth_failure();
    convert(command, e, || {
        if auth {
            lockout_note(rm)
        } else {
            String::new()
        }
    })
}

pub fn sign(
    rm: &mut ResourceManager,
    key: &Key,
    password: &[u8],
    req: &SignRequest<'_>,
) -> TpmResult<Vec<u8>> {
    if !key.can_sign() {
        return Err(TpmError::Unsupported(format!(
            "this TPM 1.2 {} key is not allowed to sign",
            key.usage_name()
        )));
    }
    let data = match (key.key.parms.sig_scheme, req.scheme) {
        (alg::SS_RSASSAPKCS1V15_DER, scheme::RSA_PKCS1) => {
            let hash = hash_of(req.hash)?;
            digest_info(hash, req.data).ok_or_else(|| {
                TpmError::InvalidArgument(format!(
                    "a {} digest is {} bytes, got {}",
                    req.hash,
                    hash.digest_len(),
                    req.data.len()
                ))
            })?
        }
        // The DER scheme pads whatever it is given: exactly PKCS#11's CKM_RSA_PKCS.
        (alg::SS_RSASSAPKCS1V15_DER, scheme::RSA_PKCS1_RAW) => {
            if req.data.len() + 11 > key.modulus_len() {
                return Err(TpmError::InvalidArgument(format!(
                    "{} bytes is too long to sign with a {}-bit key",
                    req.data.len(),
                    key.modulus_len() * 8
                )));
            }
            req.data.to_vec()
        }
        (alg::SS_RSASSAPKCS1V15_SHA1, scheme::RSA_PKCS1) if req.hash == "sha1" => {
            if req.data.len() != 20 {
                return Err(TpmError::InvalidArgument(format!(
                    "a sha1 digest is 20 bytes, got {}",
                    req.data.len()
                )));
            }
            req.data.to_vec()
        }
        (alg::SS_RSASSAPKCS1V15_SHA1, scheme::RSA_PKCS1 | scheme::RSA_PKCS1_RAW) => {
            return Err(TpmError::Unsupported(
                "this TPM 1.2 key has the SHA-1 signature scheme and can sign only SHA-1 digests; wrap the key again with `tpm-keyctl wrap` (DER scheme) to sign SHA-256/512".into(),
            ))
        }
        (_, scheme::RSA_PSS) => return Err(unsupported("RSA-PSS signing")),
        (_, scheme::ECDSA) => return Err(unsupported("ECDSA (a TPM 1.2 has no ECC)")),
        (sig, scheme::RSA_PKCS1 | scheme::RSA_PKCS1_RAW) => {
            return Err(TpmError::Unsupported(format!(
                "this TPM 1.2 key's signature scheme ({sig:#x}: TPM_SIGN_INFO or none) cannot sign a digest; wrap the key again with `tpm-keyctl wrap` (DER scheme)"
            )))
        }
        (_, s) => {
            return Err(TpmError::InvalidArgument(format!(
                "unknown signature scheme {s:?}: a TPM 1.2 signs with rsa-pkcs1 or rsa-pkcs1-raw"
            )))
        }
    };
    let auth = key.auth(password);
    rm.with_key(key, |tpm, handle| tpm.sign(handle, auth.as_ref(), &data))
        .map_err(|f| name_changed_pcrs(key, key_fail(rm, "Sign", f)))
}

pub fn decrypt(
    rm: &mut ResourceManager,
    key: &Key,
    password: &[u8],
    req: &DecryptRequest<'_>,
) -> TpmResult<Vec<u8>> {
    let (scheme_name, hash, ciphertext) = (req.scheme, req.hash, req.ciphertext);
    if !key.can_decrypt() {
        return Err(TpmError::Unsupported(format!(
            "this TPM 1.2 {} key is not allowed to decrypt",
            key.usage_name()
        )));
    }
    if scheme_name == scheme::RSA_RAW {
        return Err(unsupported(
            "raw RSA decryption (UnBind always removes the key's padding)",
        ));
    }
    if !req.label.is_empty() {
        return Err(unsupported(
            "an OAEP label (a TPM 1.2 decrypts OAEP only in the TSS bind format, label \"TCPA\")",
        ));
    }
    match (key.key.parms.enc_scheme, scheme_name) {
        (alg::ES_RSAESOAEP_SHA1_MGF1, scheme::RSA_OAEP) if hash == "sha1" => {}
        (alg::ES_RSAESOAEP_SHA1_MGF1, scheme::RSA_OAEP) => {
            return Err(unsupported(&format!(
                "OAEP with {hash} (a TPM 1.2 decrypts OAEP with SHA-1 and the TCPA label only)"
            )))
        }
        (alg::ES_RSAESPKCSV15, scheme::RSA_PKCS1_DECRYPT) => {}
        (_, scheme::RSA_OAEP | scheme::RSA_PKCS1_DECRYPT) => {
            return Err(TpmError::Unsupported(format!(
                "this TPM 1.2 key decrypts only with its own scheme ({}), not {scheme_name}{}",
                if key.key.parms.enc_scheme == alg::ES_RSAESPKCSV15 {
                    "rsa-pkcs1"
                } else {
                    "rsa-oaep with sha1, TSS bind format"
                },
                if scheme_name == scheme::RSA_PKCS1_DECRYPT {
                    "; keys tpmd makes or wraps now have the PKCS#1 v1.5 scheme: wrap the original key again"
                } else {
                    ""
                }
            )))
        }
        (_, other) => {
            return Err(TpmError::InvalidArgument(format!(
                "unknown decryption scheme {other:?}: use rsa-oaep or rsa-pkcs1"
            )))
        }
    }
    if ciphertext.len() != key.modulus_len() {
        return Err(TpmError::InvalidArgument(format!(
            "ciphertext for a {}-bit key is {} bytes, got {}",
            key.modulus_len() * 8,
            key.modulus_len(),
            ciphertext.len()
        )));
    }
    let auth = key.auth(password);
    rm.with_key(key, |tpm, handle| {
        tpm.unbind(handle, auth.as_ref(), ciphertext)
    })
    .map_err(|f| name_changed_pcrs(key, key_fail(rm, "UnBind", f)))
}

/// CreateWrapKey under the SRK: a non-migratable legacy key that signs with the DER scheme
/// and decrypts standard PKCS#1 v1.5 ciphertexts (TPM_ES_RSAESPKCSv15, for which UnBind
/// of a legacy key returns the plaintext itself: TPM 1.2 Part 3, TPM_UnBind, action 5).
/// Without a password the key needs no authorization.
pub fn generate(
    rm: &mut ResourceManager,
    key_type: &str,
    password: &[u8],
    parent: u32,
    pcr_info: Option<&[u8]>,
) -> TpmResult<String> {
    check_parent(parent)?;
    let bits = match key_type {
        "rsa2048" => 2048,
        "rsa1024" => 1024,
        t if t.starts_with("ecc") => return Err(unsupported("ECC")),
        other => {
            return Err(TpmError::InvalidArgument(format!(
                "unknown key type {other:?}: a TPM 1.2 makes {}",
                KEY_TYPES.join(", ")
            )))
        }
    };
    let mut template = generate_template(bits, Usage::LegacyPkcs1, false, !password.is_empty());
    if let Some(info) = pcr_info {
        PcrInfo::decode(info, true).map_err(|e| {
            TpmError::InvalidArgument(format!("pcr-info is not a TPM_PCR_INFO_LONG: {e}"))
        })?;
        template.pcr_info = info.to_vec();
    }
    let auth = AuthSecret::from_password_or_well_known(password);
    let key = rm
        .retrying(|tpm| tpm.create_wrap_key(&template, &auth))
        .map_err(|e| fail(rm, "CreateWrapKey", e))?;
    file::write_pem(&key.to_bytes()).map_err(|e| TpmError::Stack {
        command: "CreateWrapKey",
        detail: e.to_string(),
    })
}

/// A TPM 1.2 key file is loadable as it is (the client wrapped it in software); import
/// checks that this TPM's SRK can load it and returns it as a TSS KEY BLOB PEM.
pub fn import(rm: &mut ResourceManager, key: &Key) -> TpmResult<String> {
    rm.with_key(key, |_, _| Ok(()))
        .map_err(|f| key_fail(rm, "LoadKey2", f))?;
    file::write_pem(&key.blob).map_err(|e| TpmError::Stack {
        command: "LoadKey2",
        detail: e.to_string(),
    })
}

/// The SRK's public key presented as a TPM 2.0 RSA storage key's TPM2B_PUBLIC, which is
/// what clients take from ParentPublic (they use its modulus to wrap for a 1.2).
pub fn parent_public(rm: &mut ResourceManager, parent: u32) -> TpmResult<Vec<u8>> {
    check_parent(parent)?;
    if let Some(modulus) = &rm.srk_modulus {
        return Ok(TpmPublic::standard_srk_with_modulus(modulus).to_tpm2b());
    }
    let srk = rm
        .retrying(|tpm| tpm.srk_public())
        .map_err(|e| fail(rm, "GetPubKey", e))?;
    // It only changes with ownership; reading it may cost a wrong well-known guess.
    rm.srk_modulus = Some(srk.modulus.clone());
    Ok(TpmPublic::standard_srk_with_modulus(&srk.modulus).to_tpm2b())
}

/// Takes ownership with the well-known owner and SRK secrets (`tpm_takeownership -z`) and
/// makes the SRK public key readable (`tpm_restrictsrk -a`). False if already owned.
pub fn create_srk(rm: &mut ResourceManager) -> TpmResult<bool> {
    let owned = rm
        .tpm()
        .has_owner()
        .map_err(|e| fail(rm, "GetCapability", e))?;
    if owned {
        return Ok(false);
    }
    let wk = WellKnown::Zeros.secret();
    let srk = rm
        .retrying(|tpm| tpm.take_ownership(&wk, &wk))
        .map_err(|e| fail(rm, "TakeOwnership", e))?;
    rm.srk_modulus = Some(srk.modulus);
    Ok(true)
}

/// TPM_ResetLockValue with the owner secret (what `tpm_resetdalock` does through tcsd).
pub fn reset_lockout(rm: &mut ResourceManager) -> TpmResult<()> {
    rm.retrying(|tpm| tpm.reset_lockout())
        .map_err(|e| fail(rm, "ResetLockValue", e))
}

/// Defines TPM_NV_INDEX_LOCK (what `tpm_nvdefine -i 0xFFFFFFFF -s 0` does); false if NV
/// was locked already.
pub fn lock_nv(rm: &mut ResourceManager) -> TpmResult<bool> {
    let state = rm
        .tpm()
        .nv_state()
        .map_err(|e| fail(rm, "GetCapability", e))?;
    if state.locked {
        return Ok(false);
    }
    rm.retrying(|tpm| tpm.lock_nv())
        .map_err(|e| fail(rm, "NV_DefineSpace", e))?;
    Ok(true)
}

/// TPM_GetRandom until `count` bytes are there (a TPM may return fewer than asked).
pub fn random(rm: &mut ResourceManager, count: usize) -> TpmResult<Vec<u8>> {
    if count > MAX_RANDOM_BYTES {
        return Err(TpmError::InvalidArgument(format!(
            "ask for at most {MAX_RANDOM_BYTES} random bytes at a time, not {count}"
        )));
    }
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let want = u32::try_from(count - out.len()).unwrap_or(u32::MAX);
        let bytes = rm
            .retrying(|tpm| tpm.get_random(want))
            .map_err(|e| fail(rm, "GetRandom", e))?;
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

/// TPM_PCRRead of each PCR in `selection`; a TPM 1.2 has only the SHA-1 bank.
pub fn read_pcrs(
    rm: &mut ResourceManager,
    selection: &[tpmd_api::policy::PcrBank],
) -> TpmResult<Vec<crate::backend::PcrValue>> {
    let mut out = Vec::new();
    for bank in selection {
        if bank.hash_alg != tpmd_api::marshal::TPM_ALG_SHA1 {
            return Err(TpmError::Unsupported(format!(
                "a TPM 1.2 has only the sha1 PCR bank, not {}",
                tpmd_api::marshal::alg_name(bank.hash_alg).to_lowercase()
            )));
        }
        for pcr in &bank.pcrs {
            let index = u32::from(*pcr);
            let value = rm
                .retrying(|tpm| tpm.pcr_read(index))
                .map_err(|e| fail(rm, "PcrRead", e))?;
            out.push(("sha1".to_string(), index, value.to_vec()));
        }
    }
    Ok(out)
}
