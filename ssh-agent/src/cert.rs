//! OpenSSH certificates (`KEY-cert.pub`) beside TPM key files. ssh-agent-lib 0.5 carries
//! plain public keys only, so the agent lists certificates as their blobs and maps a
//! sign request naming a certificate to the key it certifies, both with ssh-key's codecs.

use std::path::{Path, PathBuf};

use ssh_agent_lib::proto::SignRequest;
use ssh_agent_lib::ssh_encoding::{Decode, Reader};
use ssh_key::public::KeyData;
use ssh_key::Certificate;
use tracing::warn;

const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const CERT_SUFFIX: &str = "-cert-v01@openssh.com";

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

/// The blob of the certificate for `public` beside `key`, if there is one.
pub fn beside(key: &Path, public: &KeyData) -> Option<Vec<u8>> {
    candidates(key).into_iter().find_map(|path| {
        let text = std::fs::read_to_string(&path).ok()?;
        let cert = match Certificate::from_openssh(text.trim()) {
            Ok(cert) => cert,
            Err(e) => {
                warn!("{}: not a usable OpenSSH certificate: {e}", path.display());
                return None;
            }
        };
        if cert.public_key() != public {
            warn!(
                "{}: certifies another key than {}; ignored",
                path.display(),
                key.display()
            );
            return None;
        }
        cert.to_bytes().ok()
    })
}

/// When the certificate beside `key` last changed, if there is one.
pub fn stamp_beside(key: &Path) -> Option<crate::keys::FileStamp> {
    candidates(key)
        .iter()
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| crate::keys::stamp(&m))
}

/// A sign request whose key is a certificate, as a request for the certified key. None
/// if `frame` is not such a request (it then goes through the ordinary decoder).
pub fn sign_request_with_certificate(frame: &[u8]) -> Option<SignRequest> {
    let (&kind, mut reader) = frame.split_first()?;
    if kind != SSH_AGENTC_SIGN_REQUEST {
        return None;
    }
    let blob = Vec::<u8>::decode(&mut reader).ok()?;
    let algorithm = String::decode(&mut blob.as_slice()).ok()?;
    if !algorithm.ends_with(CERT_SUFFIX) {
        return None;
    }
    let cert = Certificate::decode(&mut blob.as_slice()).ok()?;
    let data = Vec::<u8>::decode(&mut reader).ok()?;
    let flags = u32::decode(&mut reader).ok()?;
    if !reader.is_finished() {
        return None;
    }
    Some(SignRequest {
        pubkey: cert.public_key().clone(),
        data,
        flags,
    })
}
