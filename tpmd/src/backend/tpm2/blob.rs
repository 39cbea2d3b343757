//! A key file turned into what the TPM needs to load it, and the identity the resource
//! manager caches it under.

use sha2::{Digest as _, Sha256};
use tpmd_api::keyfile::{KeyFileKind, TpmKeyFile};
use tss_esapi::structures::{EncryptedSecret, Private, Public};
use tss_esapi::traits::UnMarshall;

use super::error::{TpmError, TpmResult};

/// Cache identity of a key: the digest of everything that makes it what it is.
pub type KeyId = [u8; 32];

/// A key blob ready for TPM2_Load (or TPM2_Import first, when it came as a duplicate).
#[derive(Debug, Clone)]
pub struct KeyBlob {
    pub id: KeyId,
    pub parent: u32,
    pub public: Public,
    pub private: KeyPrivate,
    pub empty_auth: bool,
}

#[derive(Debug, Clone)]
pub enum KeyPrivate {
    /// TPM2B_PRIVATE from TPM2_Create or TPM2_Import: loadable under the parent.
    Loadable(Private),
    /// A duplicate and its encrypted seed: TPM2_Import turns it into `Loadable`.
    Importable {
        duplicate: Private,
        seed: EncryptedSecret,
    },
}

/// Strips the u16 size of a TPM2B and checks it matches.
pub fn tpm2b_contents<'a>(what: &'static str, bytes: &'a [u8]) -> TpmResult<&'a [u8]> {
    tpmd_api::marshal::parse_tpm2b(bytes, what)
        .map_err(|_| TpmError::BadKeyFile(format!("the key file's {what} is truncated or corrupt")))
}

impl KeyBlob {
    pub fn from_key_file(file: &TpmKeyFile) -> TpmResult<KeyBlob> {
        if file.has_policy {
            return Err(TpmError::Unsupported(
                "this key file carries an authorization policy, which tpmd does not support yet; wrap the key without a policy".into(),
            ));
        }
        let public = Public::unmarshall(tpm2b_contents("public part", &file.public)?)
            .map_err(|_| TpmError::BadKeyFile("the key file's public part is corrupt".into()))?;
        let private_bytes = tpm2b_contents("private part", &file.private)?.to_vec();
        let bad_private =
            |_| TpmError::BadKeyFile("the key file's private part is too large".into());
        let private = match file.kind {
            KeyFileKind::Loadable => {
                KeyPrivate::Loadable(Private::try_from(private_bytes).map_err(bad_private)?)
            }
            KeyFileKind::Importable => {
                let secret = file.secret.as_deref().ok_or_else(|| {
                    TpmError::BadKeyFile("importable key file without its encrypted seed".into())
                })?;
                let seed = EncryptedSecret::try_from(
                    tpm2b_contents("encrypted seed", secret)?.to_vec(),
                )
                .map_err(|_| TpmError::BadKeyFile("the key file's seed is too large".into()))?;
                KeyPrivate::Importable {
                    duplicate: Private::try_from(private_bytes).map_err(bad_private)?,
                    seed,
                }
            }
        };
        Ok(KeyBlob {
            id: key_id(file),
            parent: file.parent,
            public,
            private,
            empty_auth: file.empty_auth,
        })
    }

    /// Parses the bytes a client sent: a key file in PEM or DER.
    pub fn parse(bytes: &[u8]) -> TpmResult<(TpmKeyFile, KeyBlob)> {
        let file = TpmKeyFile::parse(bytes).map_err(|e| TpmError::BadKeyFile(e.to_string()))?;
        let blob = KeyBlob::from_key_file(&file)?;
        Ok((file, blob))
    }
}

fn key_id(file: &TpmKeyFile) -> KeyId {
    let mut h = Sha256::new();
    h.update(file.parent.to_be_bytes());
    for part in [&file.public, &file.private] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    if let Some(secret) = &file.secret {
        h.update(secret);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpm2b_size_must_match() {
        assert_eq!(tpm2b_contents("x", &[0, 2, 7, 8]).ok(), Some(&[7u8, 8][..]));
        assert!(tpm2b_contents("x", &[0, 3, 7, 8]).is_err());
        assert!(tpm2b_contents("x", &[0]).is_err());
        assert!(tpm2b_contents("x", &[]).is_err());
    }
}
