//! A TPM 1.2 key file as a request carries it: parsed, identified by the digest of its
//! blob, with the auth value the key wants.

use sha2::{Digest, Sha256};
use tpmd_tpm12::codec::consts::{alg, auth_usage, key_usage};
use tpmd_tpm12::codec::{AuthSecret, Key12};
use tpmd_tpm12::keys::file;

use crate::backend::{TpmError, TpmResult};

pub type KeyId = [u8; 32];

pub struct Key {
    pub id: KeyId,
    pub blob: Vec<u8>,
    pub key: Key12,
}

impl Key {
    pub fn parse(bytes: &[u8]) -> TpmResult<Key> {
        let parsed = file::read(bytes).map_err(|e| {
            TpmError::BadKeyFile(format!(
                "{e}; tpmd is running on a TPM 1.2, which cannot use TPM 2.0 key files"
            ))
        })?;
        Ok(Key {
            id: Sha256::digest(&parsed.blob).into(),
            blob: parsed.blob,
            key: parsed.key,
        })
    }

    /// The secret to authorize use of the key: none for TPM_AUTH_NEVER keys; else the
    /// well-known secret for an empty password and SHA-1 of the password otherwise (the
    /// TSS convention openssl_tpm_engine and trousers use).
    pub fn auth(&self, password: &[u8]) -> Option<AuthSecret> {
        (self.key.auth_data_usage != auth_usage::NEVER)
            .then(|| AuthSecret::from_password_or_well_known(password))
    }

    pub fn modulus_len(&self) -> usize {
        self.key.modulus.len()
    }

    pub fn can_sign(&self) -> bool {
        matches!(self.key.key_usage, key_usage::SIGNING | key_usage::LEGACY)
    }

    pub fn can_decrypt(&self) -> bool {
        matches!(self.key.key_usage, key_usage::BIND | key_usage::LEGACY)
            && self.key.parms.enc_scheme != alg::ES_NONE
    }

    pub fn usage_name(&self) -> &'static str {
        match self.key.key_usage {
            key_usage::SIGNING => "signing",
            key_usage::STORAGE => "storage",
            key_usage::IDENTITY => "identity",
            key_usage::BIND => "bind",
            key_usage::LEGACY => "legacy",
            key_usage::MIGRATE => "migration",
            _ => "unknown-usage",
        }
    }
}
