//! A key file turned into what the TPM needs to load it, parsed once per cached key, and
//! the identity the resource manager caches it under.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tpmd_api::keyfile::{AuthPolicy, KeyFileKind, PolicyStatement, TpmKeyFile};
use tpmd_api::public::TpmPublic;

use super::error::{TpmError, TpmResult};

/// Cache identity of a key: the digest of the key file bytes a client sends, so a hot
/// key costs a hash and a lookup, not a parse.
pub type KeyId = [u8; 32];

pub fn key_id(file_bytes: &[u8]) -> KeyId {
    Sha256::digest(file_bytes).into()
}

/// A key blob ready for TPM2_Load (or TPM2_Import first, when it came as a duplicate).
#[derive(Debug, Clone)]
pub struct KeyBlob {
    pub id: KeyId,
    pub parent: u32,
    pub public: TpmPublic,
    /// TPM2B_PUBLIC as the file holds it.
    pub public_bytes: Vec<u8>,
    /// The key's name (nameAlg || H(TPMT_PUBLIC)), which HMAC sessions bind.
    pub name: Vec<u8>,
    pub private: KeyPrivate,
    pub empty_auth: bool,
    /// The statements a policy session runs before each use of the key (empty: the key
    /// is authorized by its auth value alone).
    pub policy: Vec<PolicyStatement>,
    /// Signed policies that came with the key bytes (the file's own, then the user's the
    /// client appended), for a policy that starts with TPM2_PolicyAuthorize.
    pub auth_policies: Vec<AuthPolicy>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub enum KeyPrivate {
    /// TPM2B_PRIVATE from TPM2_Create or TPM2_Import: loadable under the parent.
    Loadable(Vec<u8>),
    /// A duplicate and its encrypted seed (TPM2B_PRIVATE, TPM2B_ENCRYPTED_SECRET):
    /// TPM2_Import turns it into `Loadable`.
    Importable { duplicate: Vec<u8>, seed: Vec<u8> },
}

/// Checks that a TPM2B's size matches its contents.
fn check_tpm2b(what: &'static str, bytes: &[u8]) -> TpmResult<()> {
    tpmd_api::marshal::parse_tpm2b(bytes, what)
        .map(|_| ())
        .map_err(|_| TpmError::BadKeyFile(format!("the key file's {what} is truncated or corrupt")))
}

impl KeyBlob {
    pub fn from_key_file(id: KeyId, file: &TpmKeyFile) -> TpmResult<KeyBlob> {
        let public = file
            .public_area()
            .map_err(|e| TpmError::BadKeyFile(format!("the key file's public part: {e}")))?;
        let name = public
            .name()
            .map_err(|e| TpmError::BadKeyFile(format!("the key file's public part: {e}")))?;
        check_tpm2b("private part", &file.private)?;
        if !file.policy.is_empty() {
            super::policy::check_runnable(&public, &file.policy)?;
        }
        let private = match file.kind {
            KeyFileKind::Loadable => KeyPrivate::Loadable(file.private.clone()),
            KeyFileKind::Importable => {
                let seed = file.secret.clone().ok_or_else(|| {
                    TpmError::BadKeyFile("importable key file without its encrypted seed".into())
                })?;
                check_tpm2b("encrypted seed", &seed)?;
                KeyPrivate::Importable {
                    duplicate: file.private.clone(),
                    seed,
                }
            }
        };
        Ok(KeyBlob {
            id,
            parent: file.parent,
            public,
            public_bytes: file.public.clone(),
            name,
            private,
            empty_auth: file.empty_auth,
            policy: file.policy.clone(),
            auth_policies: file.auth_policies.clone(),
            description: file.description.clone(),
        })
    }

    /// Parses the bytes a client sent: a key file in PEM or DER.
    pub fn parse(bytes: &[u8]) -> TpmResult<Arc<KeyBlob>> {
        let file = TpmKeyFile::parse(bytes).map_err(|e| TpmError::BadKeyFile(e.to_string()))?;
        Ok(Arc::new(KeyBlob::from_key_file(key_id(bytes), &file)?))
    }
}
