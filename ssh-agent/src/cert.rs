//! OpenSSH certificates (`KEY-cert.pub`) beside TPM key files: each is served as an
//! identity of its own, signed for by the key file it certifies.

use std::path::{Path, PathBuf};

use ssh_key::public::KeyData;

use crate::certificate::Cert;
use tracing::warn;

/// The certificate files that may sit beside `key`: `KEY-cert.pub`, and for `NAME.tpm`
/// also `NAME-cert.pub`.
fn candidates(key: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(format!("{}-cert.pub", key.display()))];
    if key.extension().is_some_and(|e| e == "tpm") {
        out.push(PathBuf::from(format!(
            "{}-cert.pub",
            key.with_extension("").display()
        )));
    }
    out
}

/// The certificate for `public` beside `key`, if there is one.
pub fn beside(key: &Path, public: &KeyData) -> Option<Cert> {
    candidates(key).into_iter().find_map(|path| {
        let text = std::fs::read_to_string(&path).ok()?;
        let cert = match Cert::from_openssh(text.trim()) {
            Ok(cert) => cert,
            Err(e) => {
                warn!("{}: not a usable OpenSSH certificate: {e}", path.display());
                return None;
            }
        };
        if &cert.key != public {
            warn!(
                "{}: certifies another key than {}; ignored",
                path.display(),
                key.display()
            );
            return None;
        }
        Some(cert)
    })
}

/// When the certificate beside `key` last changed, if there is one.
pub fn stamp_beside(key: &Path) -> Option<crate::keys::FileStamp> {
    candidates(key)
        .iter()
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| crate::keys::stamp(&m))
}
