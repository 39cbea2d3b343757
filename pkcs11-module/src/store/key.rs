//! A TPM key file read from disk, with what PKCS#11 objects need to describe it.

use std::path::{Path, PathBuf};

use sha1::{Digest as _, Sha1};
use sha2::Sha256;
use tpmd_api::marshal::{
    TPMA_OBJECT_DECRYPT, TPMA_OBJECT_SIGN, TPM_ALG_NULL, TPM_ALG_OAEP, TPM_ALG_RSAES, TPM_ALG_SHA1,
    TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512,
};
use tpmd_api::public::{EccCurve, KeyParams};
use tpmd_api::TpmPublic;

use crate::config::DirKind;
use crate::mechanism::Hash;

/// Key files are small; anything bigger is not one and is not read whole.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// DER OIDs of the curves, as CKA_EC_PARAMS holds them.
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The public half, in the forms PKCS#11 attributes use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicParts {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    Ec {
        curve: EccCurve,
        /// CKA_EC_PARAMS: the curve's DER OID.
        params: Vec<u8>,
        /// CKA_EC_POINT: DER OCTET STRING of the uncompressed point.
        point: Vec<u8>,
    },
}

impl PublicParts {
    pub fn from_tpm(public: &TpmPublic) -> PublicParts {
        match &public.key {
            KeyParams::Rsa {
                exponent, modulus, ..
            } => {
                let e = if *exponent == 0 { 65537 } else { *exponent };
                let bytes = e.to_be_bytes();
                let first = bytes.iter().position(|b| *b != 0).unwrap_or(3);
                PublicParts::Rsa {
                    modulus: modulus.clone(),
                    exponent: bytes[first..].to_vec(),
                }
            }
            KeyParams::Ecc { curve, x, y } => {
                let size = curve.field_size();
                let mut raw = vec![0x04];
                raw.extend(pad_left(x, size));
                raw.extend(pad_left(y, size));
                let mut point = vec![0x04, raw.len() as u8];
                point.extend(raw);
                PublicParts::Ec {
                    curve: *curve,
                    params: match curve {
                        EccCurve::NistP256 => P256_PARAMS.to_vec(),
                        EccCurve::NistP384 => P384_PARAMS.to_vec(),
                    },
                    point,
                }
            }
        }
    }

    /// Signature length in bytes.
    pub fn signature_len(&self) -> usize {
        match self {
            PublicParts::Rsa { modulus, .. } => modulus.len(),
            PublicParts::Ec { curve, .. } => 2 * curve.field_size(),
        }
    }

    /// Key size as CK_MECHANISM_INFO counts it: bits of the modulus or the curve.
    pub fn bits(&self) -> usize {
        match self {
            PublicParts::Rsa { modulus, .. } => modulus.len() * 8,
            PublicParts::Ec { curve, .. } => curve.field_size() * 8,
        }
    }

    /// The usual default CKA_ID: SHA-1 of the modulus or of the uncompressed point.
    pub fn default_id(&self) -> Vec<u8> {
        match self {
            PublicParts::Rsa { modulus, .. } => Sha1::digest(modulus).to_vec(),
            PublicParts::Ec { point, .. } => Sha1::digest(&point[2..]).to_vec(),
        }
    }
}

fn pad_left(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = vec![0; size.saturating_sub(bytes.len())];
    out.extend_from_slice(bytes);
    out
}

/// What decryption a key's public area leaves open: a TPM applies a scheme fixed there
/// whatever the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decryption {
    /// The NULL scheme: any padding, including none (raw RSA).
    Open,
    /// RSAES-PKCS1-v1_5 only (every TPM 1.2 key tpmd makes or wraps).
    Pkcs1,
    /// OAEP with this hash only.
    Oaep(Hash),
    /// A scheme this module has no mechanism for.
    Other,
}

impl Decryption {
    fn of(public: &TpmPublic) -> Decryption {
        let hash = match public.scheme_hash {
            TPM_ALG_SHA1 => Some(Hash::Sha1),
            TPM_ALG_SHA256 => Some(Hash::Sha256),
            TPM_ALG_SHA384 => Some(Hash::Sha384),
            TPM_ALG_SHA512 => Some(Hash::Sha512),
            _ => None,
        };
        match (public.scheme, hash) {
            (TPM_ALG_NULL, _) => Decryption::Open,
            (TPM_ALG_RSAES, _) => Decryption::Pkcs1,
            (TPM_ALG_OAEP, Some(h)) => Decryption::Oaep(h),
            _ => Decryption::Other,
        }
    }
}

/// A TPM key found in a key directory.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub path: PathBuf,
    pub dir_kind: DirKind,
    /// The key file exactly as read: what tpmd is sent with each request.
    pub blob: Vec<u8>,
    /// Bound to signed policies: each request adds the user's (see
    /// `tpmd_api::client::to_send`).
    pub takes_user_policies: bool,
    /// SHA-256 of the key file: names the key (and its auth value, which changes the
    /// file) in the list of keys that take the token PIN.
    pub digest: [u8; 32],
    pub parts: PublicParts,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub empty_auth: bool,
    pub can_sign: bool,
    /// The TPM key may decrypt; `decryption` says with what.
    pub can_decrypt: bool,
    pub decryption: Decryption,
    pub label: String,
    pub id: Vec<u8>,
}

/// The file name without a trailing `.tpm`: the name its companions (.pub, .crt) share.
pub fn stem_path(path: &Path) -> PathBuf {
    let s = path.to_string_lossy();
    match s.strip_suffix(".tpm") {
        Some(stem) if !stem.ends_with('/') => PathBuf::from(stem),
        _ => path.to_path_buf(),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn companion(path: &Path, suffix: &str) -> PathBuf {
    with_suffix(&stem_path(path), suffix)
}

/// The comment of an OpenSSH public key file (`type base64 comment`).
fn ssh_comment(pub_file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(pub_file).ok()?;
    let line = text.lines().next()?;
    let comment = line
        .split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ");
    (!comment.is_empty()).then_some(comment)
}

fn file_label(path: &Path) -> String {
    stem_path(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.is_empty() || !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyEntry {
    /// Reads a key file; `None` if it is not a TPM key this module can serve.
    pub fn read(path: &Path, dir_kind: DirKind) -> Option<KeyEntry> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() > MAX_KEY_FILE {
            return None;
        }
        let blob = std::fs::read(path).ok()?;
        Self::from_blob(path, dir_kind, blob)
    }

    pub fn from_blob(path: &Path, dir_kind: DirKind, blob: Vec<u8>) -> Option<KeyEntry> {
        if !tpmd_api::client::is_tpm_key_file(&blob) {
            return None;
        }
        let public = tpmd_api::client::key_file_public(&blob).ok()?;
        let empty_auth = !tpmd_api::client::key_needs_auth(&blob).ok()?;
        let parts = PublicParts::from_tpm(&public);
        let spki = public.to_spki_der().ok()?;
        let pub_file = companion(path, ".pub");
        let (label, id) = match dir_kind {
            DirKind::Store => {
                let id = std::fs::read_to_string(companion(path, ".id"))
                    .ok()
                    .and_then(|t| parse_hex(&t))
                    .unwrap_or_else(|| parts.default_id());
                (file_label(path), id)
            }
            DirKind::Ssh => {
                // gnome-keyring's ssh store: the key is known by its ssh fingerprint.
                let id = public
                    .to_ssh_public_key("")
                    .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).as_bytes().to_vec())
                    .unwrap_or_else(|_| parts.default_id());
                (
                    ssh_comment(&pub_file).unwrap_or_else(|| file_label(path)),
                    id,
                )
            }
            DirKind::Extra => (
                ssh_comment(&pub_file).unwrap_or_else(|| file_label(path)),
                parts.default_id(),
            ),
        };
        Some(KeyEntry {
            path: path.to_path_buf(),
            dir_kind,
            digest: Sha256::digest(&blob).into(),
            takes_user_policies: tpmd_api::client::takes_user_policies(&blob),
            blob,
            spki,
            empty_auth,
            can_sign: public.has_attributes(TPMA_OBJECT_SIGN),
            can_decrypt: matches!(parts, PublicParts::Rsa { .. })
                && public.has_attributes(TPMA_OBJECT_DECRYPT),
            decryption: Decryption::of(&public),
            parts,
            label,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_hex() {
        assert_eq!(
            stem_path(Path::new("/a/id_rsa.tpm")),
            PathBuf::from("/a/id_rsa")
        );
        assert_eq!(
            companion(Path::new("/a/k.pem.tpm"), ".crt"),
            PathBuf::from("/a/k.pem.crt")
        );
        assert_eq!(
            companion(Path::new("/a/k"), ".pub"),
            PathBuf::from("/a/k.pub")
        );
        assert_eq!(parse_hex("0a1B\n"), Some(vec![0x0a, 0x1b]));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(to_hex(&[1, 0xff]), "01ff");
    }
}
