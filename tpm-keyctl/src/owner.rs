//! The owner of signed policies: a software key (PEM) or a TPM key file, whose
//! public area PolicyAuthorize names and whose signature authorizes PCR values.

use std::path::Path;

use tpmd_api::client::key_policy::{
    owner_public_from_spki_der, owner_public_of, sign_with_software_owner, tpmt_signature,
};
use tpmd_api::client::{is_tpm_key_file, key_needs_auth};
use tpmd_api::dbus::{scheme, Bytes};
use tpmd_api::public::KeyParams;
use tpmd_api::{SoftwareKey, TpmKeyFile, TpmPublic};

use crate::commands::Tpmd;
use crate::error::{CliError, CliResult};
use crate::{files, prompt};

/// The owner's public area from a file: a PEM public key, a TPM key file, or (for
/// convenience) the owner's PEM private key itself.
pub fn public(path: &Path) -> CliResult<TpmPublic> {
    let bytes = files::read(path)?;
    if is_tpm_key_file(&bytes) {
        return tpm_key_public(path, &bytes);
    }
    if let Ok(text) = std::str::from_utf8(&bytes) {
        if let Ok((label, der)) = der::pem::decode_vec(text.trim().as_bytes()) {
            if label == "PUBLIC KEY" {
                return owner_public_from_spki_der(&der).map_err(|e| CliError::file(path, e));
            }
        }
    }
    match tpmd_api::privkey::read_private_key(&bytes, None) {
        Ok(read) => owner_public_of(&read.key).map_err(|e| CliError::file(path, e)),
        Err(_) => Err(CliError::file(
            path,
            "is not an owner key: pass a PEM public key (-----BEGIN PUBLIC KEY-----, RSA or P-256) or a TPM key file",
        )),
    }
}

fn tpm_key_public(path: &Path, bytes: &[u8]) -> CliResult<TpmPublic> {
    let file = TpmKeyFile::parse(bytes).map_err(|_| {
        CliError::file(
            path,
            "is a TPM 1.2 key; signed policies need a TPM 2.0 owner key",
        )
    })?;
    let public = file.public_area().map_err(|e| CliError::file(path, e))?;
    if !public.has_attributes(tpmd_api::marshal::TPMA_OBJECT_SIGN) {
        return Err(CliError::file(
            path,
            "is a TPM key that cannot sign; the owner key must be a signing key",
        ));
    }
    Ok(public)
}

/// An owner private key, ready to sign authorizations.
pub enum Owner {
    Software(Box<SoftwareKey>),
    Tpm { bytes: Vec<u8>, public: TpmPublic },
}

impl Owner {
    pub fn read(path: &Path, passphrase_file: Option<&Path>) -> CliResult<Owner> {
        let bytes = files::read(path)?;
        if is_tpm_key_file(&bytes) {
            let public = tpm_key_public(path, &bytes)?;
            return Ok(Owner::Tpm { bytes, public });
        }
        let read = crate::commands::read_key(path, &bytes, passphrase_file)?;
        Ok(Owner::Software(Box::new(read.key)))
    }

    pub fn public(&self, path: &Path) -> CliResult<TpmPublic> {
        match self {
            Owner::Software(key) => owner_public_of(key).map_err(|e| CliError::file(path, e)),
            Owner::Tpm { public, .. } => Ok(public.clone()),
        }
    }

    /// The TPMT_SIGNATURE of `a_hash` (a SHA-256 digest), made in software or by tpmd.
    pub async fn sign(
        &self,
        path: &Path,
        tpmd: Option<&Tpmd>,
        a_hash: &[u8],
        auth_file: Option<&Path>,
    ) -> CliResult<Vec<u8>> {
        let public = self.public(path)?;
        let raw = match self {
            Owner::Software(key) => {
                sign_with_software_owner(key, a_hash).map_err(|e| CliError::file(path, e))?
            }
            Owner::Tpm { bytes, .. } => {
                let tpmd = tpmd.ok_or_else(|| {
                    CliError::Usage("signing with a TPM owner key needs tpmd".into())
                })?;
                let needs_auth = key_needs_auth(bytes).map_err(|e| CliError::file(path, e))?;
                let auth = match (auth_file, needs_auth) {
                    (Some(file), _) => files::read_secret(file)?,
                    (None, false) => zeroize::Zeroizing::new(Vec::new()),
                    (None, true) => {
                        prompt::secret(&format!("Auth value for {}: ", path.display()))?
                    }
                };
                let scheme_name = match public.key {
                    KeyParams::Rsa { .. } => scheme::RSA_PKCS1,
                    KeyParams::Ecc { .. } => scheme::ECDSA,
                };
                let sent = tpmd_api::client::with_user_policies(bytes);
                tpmd.check(
                    tpmd.proxy
                        .sign(
                            Bytes::new(&sent),
                            Bytes::new(&auth),
                            scheme_name,
                            "sha256",
                            Bytes::new(a_hash),
                        )
                        .await,
                )?
                .into_vec()
            }
        };
        tpmt_signature(&public, &raw).map_err(|e| CliError::file(path, e))
    }
}
