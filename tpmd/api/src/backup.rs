//! Offline backups of wrapped keys. A TPM clear, a firmware-TPM reset or a new
//! motherboard destroys every key wrapped for that TPM; a backup survives it.
//!
//! A backup is the same outer-wrapped duplicate that wrapping builds for a TPM, made for
//! a software *backup key* instead of an SRK (the backup key's public half dressed as a
//! standard storage key). Its private half is kept offline, never on the machine. To
//! restore, the backup is opened here in software with that private half, and the key
//! is wrapped again for the new TPM, with the same auth value; the plaintext never
//! leaves this process and is zeroized.

use thiserror::Error;
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError};
use crate::duplicate::{wrap_for_parent, DuplicateError};
use crate::keyfile::{KeyFileKind, TpmKeyFile};
use crate::marshal::*;
use crate::privkey::SoftwareKey;
use crate::public::{EccCurve, KeyParams, PublicError, TpmPublic};

/// The parent a backup names: TPM_RH_NULL, which no TPM loads under, so a backup handed
/// to tpmd by mistake is refused instead of imported.
pub const BACKUP_PARENT: u32 = 0x4000_0007;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BackupError {
    #[error(transparent)]
    Duplicate(#[from] DuplicateError),
    #[error(
        "this is not a key backup (an importable TSS2 key made by `tpm-keyctl wrap --backup-to`)"
    )]
    NotABackup,
    #[error("this backup was not made for this backup key, or it is damaged (its integrity check failed)")]
    WrongBackupKey,
    #[error("the backup key is {0}; backups are made for RSA-2048 or ECC P-256 backup keys")]
    BackupKeyType(String),
    #[error("the backup holds a key tpmd cannot rebuild: {0}")]
    BadContents(String),
}

impl From<CryptoError> for BackupError {
    fn from(e: CryptoError) -> Self {
        BackupError::Duplicate(e.into())
    }
}

impl From<PublicError> for BackupError {
    fn from(e: PublicError) -> Self {
        BackupError::Duplicate(e.into())
    }
}

/// A backup of `key` (with its auth value) for the backup key whose public half is the
/// PEM `backup_public`.
pub fn make_backup(
    key: &SoftwareKey,
    auth: &[u8],
    backup_public: &str,
) -> Result<TpmKeyFile, BackupError> {
    let parent = TpmPublic::standard_srk_from_spki_pem(backup_public)?;
    Ok(wrap_for_parent(key, auth, &parent, BACKUP_PARENT)?)
}

/// Opens a backup with the backup key's private half: the key and its auth value.
pub fn open_backup(
    backup: &TpmKeyFile,
    backup_key: &SoftwareKey,
) -> Result<(SoftwareKey, Zeroizing<Vec<u8>>), BackupError> {
    if backup.kind != KeyFileKind::Importable || backup.parent != BACKUP_PARENT {
        return Err(BackupError::NotABackup);
    }
    let secret = backup.secret.as_deref().ok_or(BackupError::NotABackup)?;
    let encrypted_seed = parse_tpm2b(secret, "encrypted seed").map_err(PublicError::from)?;
    let seed = decrypt_seed(backup_key, encrypted_seed)?;
    let public = backup.public_area().map_err(|_| BackupError::NotABackup)?;
    let name = public.name()?;
    // The parent is the standard storage key form of the backup key: SHA-256, AES-128.
    let outer = parse_tpm2b(&backup.private, "duplicate").map_err(PublicError::from)?;
    let mut r = Reader::new(outer);
    let outer_hmac = r.read_tpm2b("outer HMAC").map_err(PublicError::from)?;
    let enc_sensitive = r
        .read_bytes(r.remaining(), "sensitive")
        .map_err(PublicError::from)?;
    let hmac_key = crypto::kdfa(TPM_ALG_SHA256, &seed, "INTEGRITY", &[], &[], 256)?;
    let expected = crypto::hmac(TPM_ALG_SHA256, &hmac_key, &[enc_sensitive, &name])?;
    if expected.as_slice() != outer_hmac {
        return Err(BackupError::WrongBackupKey);
    }
    let sym_key = crypto::kdfa(TPM_ALG_SHA256, &seed, "STORAGE", &name, &[], 128)?;
    let mut sensitive = Zeroizing::new(enc_sensitive.to_vec());
    crypto::aes_cfb_decrypt(&sym_key, &[0u8; 16], &mut sensitive)?;
    rebuild(&public, &sensitive)
}

/// The seed the backup was made with, decrypted with the backup key (label "DUPLICATE").
fn decrypt_seed(
    backup_key: &SoftwareKey,
    encrypted: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BackupError> {
    match backup_key {
        SoftwareKey::Rsa(key) => {
            let padding = rsa::Oaep::new_with_label::<sha2::Sha256, _>("DUPLICATE\0");
            key.decrypt(padding, encrypted)
                .map(Zeroizing::new)
                .map_err(|_| BackupError::WrongBackupKey)
        }
        SoftwareKey::EcP256(key) => {
            let mut r = Reader::new(encrypted);
            // A seed encrypted to another kind of key does not even parse as a point.
            let x = r
                .read_tpm2b("ephemeral x")
                .map_err(|_| BackupError::WrongBackupKey)?;
            let y = r
                .read_tpm2b("ephemeral y")
                .map_err(|_| BackupError::WrongBackupKey)?;
            if x.len() != 32 || y.len() != 32 {
                return Err(BackupError::WrongBackupKey);
            }
            let point = p256::EncodedPoint::from_affine_coordinates(
                p256::FieldBytes::from_slice(x),
                p256::FieldBytes::from_slice(y),
                false,
            );
            let ephemeral = Option::<p256::PublicKey>::from(
                <p256::PublicKey as p256::elliptic_curve::sec1::FromEncodedPoint<_>>::from_encoded_point(&point),
            )
            .ok_or(BackupError::WrongBackupKey)?;
            let shared = p256::ecdh::diffie_hellman(key.to_nonzero_scalar(), ephemeral.as_affine());
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let own = key.public_key().to_encoded_point(false);
            let own_x = own.x().map(|c| c.to_vec()).unwrap_or_default();
            Ok(crypto::kdfe(
                TPM_ALG_SHA256,
                shared.raw_secret_bytes(),
                "DUPLICATE",
                x,
                &own_x,
                256,
            )?)
        }
        SoftwareKey::EcP384(_) => Err(BackupError::BackupKeyType("ECC P-384".into())),
    }
}

/// The key from its public area and its TPM2B_SENSITIVE, and the auth value inside.
fn rebuild(
    public: &TpmPublic,
    sensitive: &[u8],
) -> Result<(SoftwareKey, Zeroizing<Vec<u8>>), BackupError> {
    let bad = |what: &str| BackupError::BadContents(what.to_string());
    let inner = parse_tpm2b(sensitive, "TPM2B_SENSITIVE").map_err(|_| bad("sensitive area"))?;
    let mut r = Reader::new(inner);
    r.read_u16("sensitiveType").map_err(|_| bad("type"))?;
    let auth = Zeroizing::new(r.read_tpm2b("authValue").map_err(|_| bad("auth"))?.to_vec());
    r.read_tpm2b("seedValue").map_err(|_| bad("seed"))?;
    let secret = Zeroizing::new(r.read_tpm2b("sensitive").map_err(|_| bad("key"))?.to_vec());
    let key = match &public.key {
        KeyParams::Rsa {
            exponent, modulus, ..
        } => {
            let n = rsa::BigUint::from_bytes_be(modulus);
            let p = rsa::BigUint::from_bytes_be(&secret);
            let zero = rsa::BigUint::from(0u32);
            if p == zero || &n % &p != zero {
                return Err(bad("an RSA prime that does not divide the modulus"));
            }
            let q = &n / &p;
            let e = rsa::BigUint::from(if *exponent == 0 { 65537 } else { *exponent });
            let key = rsa::RsaPrivateKey::from_p_q(p, q, e).map_err(|e| bad(&e.to_string()))?;
            SoftwareKey::Rsa(key)
        }
        KeyParams::Ecc { curve, .. } => match curve {
            EccCurve::NistP256 => SoftwareKey::EcP256(
                p256::SecretKey::from_slice(&secret).map_err(|_| bad("a P-256 scalar"))?,
            ),
            EccCurve::NistP384 => SoftwareKey::EcP384(
                p384::SecretKey::from_slice(&secret).map_err(|_| bad("a P-384 scalar"))?,
            ),
        },
    };
    Ok((key, auth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privkey::read_private_key;

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn key(name: &str) -> SoftwareKey {
        read_private_key(&data(name), None).unwrap().key
    }

    fn public_pem(name: &str) -> String {
        String::from_utf8(data(name)).unwrap()
    }

    #[test]
    fn a_backup_opens_with_its_backup_key_only() {
        // RSA-2048 and P-256 backup keys; RSA and EC keys inside.
        for (backup_private, backup_public) in [
            ("rsa2048-pkcs1.pem", "rsa2048-pkcs1.spki.pem"),
            ("p256-sec1.pem", "p256-sec1.spki.pem"),
        ] {
            for inner in ["rsa3072-pkcs1.pem", "p384-sec1.pem"] {
                let original = key(inner);
                let backup = make_backup(&original, b"pin", &public_pem(backup_public)).unwrap();
                let reparsed = TpmKeyFile::parse(backup.to_pem().as_bytes()).unwrap();
                let (restored, auth) = open_backup(&reparsed, &key(backup_private)).unwrap();
                assert_eq!(auth.as_slice(), b"pin");
                assert_eq!(
                    restored.public_ssh().unwrap(),
                    original.public_ssh().unwrap(),
                    "{inner} in a backup for {backup_private}"
                );
            }
        }
        let backup = make_backup(
            &key("p256-sec1.pem"),
            b"",
            &public_pem("rsa2048-pkcs1.spki.pem"),
        )
        .unwrap();
        assert_eq!(
            open_backup(&backup, &key("p256-sec1.pem")).unwrap_err(),
            BackupError::WrongBackupKey
        );
    }
}
