//! What every frontend does with tpmd beyond single calls: wrap a software key and have
//! tpmd import it, and read the public key of any TPM key file. Frontends go through
//! these functions rather than the D-Bus calls directly, so that a new TPM family or key
//! file format needs changes here only.

pub mod connection;
pub mod key_policy;
pub mod tpm12;
mod user_policies;

use thiserror::Error;

pub use connection::{connect, tpmd_present, Scope};
pub use user_policies::{takes_user_policies, to_send, with_policies_from, with_user_policies};

use crate::dbus::{Daemon1Proxy, DaemonError};
use crate::duplicate::wrap_with_policy;
use crate::keyfile::{KeyFileError, TpmKeyFile};
use crate::privkey::SoftwareKey;
use crate::public::TpmPublic;
use key_policy::KeyPolicy;

/// Why wrapping and importing a key failed. Each message is one line saying what to do.
#[derive(Debug, Error)]
pub enum WrapError {
    /// tpmd refused or is not reachable.
    #[error("{}", .0.message())]
    Daemon(#[from] DaemonError),
    /// tpmd answered with something that is not what the API promises.
    #[error("tpmd sent a bad reply: {0}")]
    BadReply(String),
    /// The key cannot be wrapped for this parent (unsupported type or size).
    #[error("{0}")]
    Unwrappable(String),
}

/// Wraps `key` for the parent at `parent` (normally [`crate::DEFAULT_SRK_HANDLE`]) with
/// the auth value `auth`, has tpmd import the duplicate, and returns the loadable key
/// file as PEM text. The plaintext key never leaves this process.
pub async fn wrap_and_import(
    proxy: &Daemon1Proxy<'_>,
    key: &SoftwareKey,
    auth: &[u8],
    parent: u32,
) -> Result<String, WrapError> {
    wrap_and_import_with_policy(proxy, key, auth, parent, None).await
}

/// [`wrap_and_import`] for a key bound to `policy`: the duplicate carries the policy's
/// digest as authPolicy, and the key file tpmd returns gets the policy fields (which
/// are not integrity-protected, so the importable sent to tpmd needs none of them).
pub async fn wrap_and_import_with_policy(
    proxy: &Daemon1Proxy<'_>,
    key: &SoftwareKey,
    auth: &[u8],
    parent: u32,
    policy: Option<&KeyPolicy>,
) -> Result<String, WrapError> {
    let bytes = proxy.parent_public(parent).await?;
    let parent_public = TpmPublic::from_tpm2b(&bytes)
        .map_err(|e| WrapError::BadReply(format!("bad parent public area: {e}")))?;
    let family = proxy.get_info().await?.family;
    let digest = match policy {
        Some(policy) => Some(
            policy
                .digest()
                .map_err(|e| WrapError::Unwrappable(e.to_string()))?,
        ),
        None => None,
    };
    if family.as_deref() == Some("1.2") {
        let pcr_info = match policy {
            Some(policy) => tpm12_pcr_info(policy)?,
            None => Vec::new(),
        };
        let importable = tpm12::wrap_bound(key, auth, &parent_public, pcr_info)?;
        // A TSS KEY BLOB has no policy fields: the binding is in the blob itself.
        let pem = proxy.import(importable.as_bytes()).await?;
        return String::from_utf8(pem)
            .map_err(|_| WrapError::BadReply("key file is not text".into()));
    }
    let importable = wrap_with_policy(key, auth, digest.as_deref(), &parent_public, parent)
        .map_err(|e| WrapError::Unwrappable(e.to_string()))?
        .to_der();
    let pem = proxy.import(&importable).await?;
    let Some(policy) = policy else {
        return String::from_utf8(pem)
            .map_err(|_| WrapError::BadReply("key file is not text".into()));
    };
    with_policy_fields(&pem, policy)
}

/// What a TPM 1.2 binds a key to (TPM_PCR_INFO_LONG): PCR values of the sha1 bank, and
/// nothing else.
pub fn tpm12_pcr_info(policy: &KeyPolicy) -> Result<Vec<u8>, WrapError> {
    if crate::auth_policy_file::key_authorize(&policy.statements).is_some() {
        return Err(WrapError::Unwrappable(
            "this is a TPM 1.2, and signed policies are a TPM 2.0 feature: bind the key to PCR values with --pcr sha1:... instead".into(),
        ));
    }
    let [bank] = policy.recorded.as_slice() else {
        return Err(WrapError::Unwrappable(
            "a TPM 1.2 binds a key to PCR values of its one bank: use --pcr sha1:...".into(),
        ));
    };
    if bank.hash_alg != crate::marshal::TPM_ALG_SHA1 {
        return Err(WrapError::Unwrappable(
            "a TPM 1.2 has only the sha1 PCR bank: use --pcr sha1:...".into(),
        ));
    }
    let pcrs: Vec<u32> = bank.values.iter().map(|(pcr, _)| u32::from(*pcr)).collect();
    let values = bank
        .values
        .iter()
        .map(|(_, value)| <[u8; 20]>::try_from(value.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| WrapError::Unwrappable("a sha1 PCR value is 20 bytes".into()))?;
    tpm12::pcr_binding(&pcrs, &values).map_err(WrapError::Unwrappable)
}

/// A key file tpmd made (Generate) or imported, with `policy`'s fields written in.
pub fn with_policy_fields(key_file: &[u8], policy: &KeyPolicy) -> Result<String, WrapError> {
    let mut file = TpmKeyFile::parse(key_file)
        .map_err(|e| WrapError::BadReply(format!("the key file tpmd returned: {e}")))?;
    policy.write_into(&mut file);
    Ok(file.to_pem())
}

/// Whether `bytes` are a TPM key file of any family tpmd serves (TSS2 PRIVATE KEY, TSS KEY
/// BLOB or a raw TPM_KEY12), as opposed to a software key or something else.
pub fn is_tpm_key_file(bytes: &[u8]) -> bool {
    TpmKeyFile::parse(bytes).is_ok() || tpm12::is_key_file(bytes)
}

/// The public key inside a TPM key file of any family, read without asking tpmd. A TPM
/// 1.2 key is presented in the shape of a TPM 2.0 RSA key's public area.
pub fn key_file_public(bytes: &[u8]) -> Result<TpmPublic, KeyFileError> {
    match TpmKeyFile::parse(bytes) {
        Ok(file) => file.public_area(),
        Err(_) if tpm12::is_key_file(bytes) => {
            tpm12::key_file_public(bytes).map_err(KeyFileError::Tpm12)
        }
        Err(tss2_error) => Err(tss2_error),
    }
}

/// Whether a TPM key file of any family needs an auth value to be used (so a client knows
/// whether to ask for one).
pub fn key_needs_auth(bytes: &[u8]) -> Result<bool, KeyFileError> {
    match TpmKeyFile::parse(bytes) {
        Ok(file) => Ok(!file.empty_auth),
        Err(_) if tpm12::is_key_file(bytes) => {
            tpm12::needs_auth(bytes).map_err(KeyFileError::Tpm12)
        }
        Err(tss2_error) => Err(tss2_error),
    }
}
