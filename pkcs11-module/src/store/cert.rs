//! X.509 certificates stored beside keys (`<key>.crt`) or alone (`*.crt` in a key
//! directory), PEM or DER.

use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use sha1::{Digest as _, Sha1};
use x509_cert::Certificate;

/// The parts of a certificate that PKCS#11 attributes expose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertEntry {
    pub path: PathBuf,
    /// CKA_VALUE: the DER certificate.
    pub der: Vec<u8>,
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    /// CKA_SERIAL_NUMBER: the DER INTEGER.
    pub serial: Vec<u8>,
    /// The subject's public key as DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub label: String,
    pub id: Vec<u8>,
}

/// DER from PEM (`-----BEGIN CERTIFICATE-----`) or DER input.
fn to_der(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Some(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let (_, der) = der::pem::decode_vec(&text.as_bytes()[start..]).ok()?;
    Some(der)
}

impl CertEntry {
    /// Parses a certificate; the label and id are filled in by the caller.
    pub fn parse(path: &Path, bytes: &[u8]) -> Option<CertEntry> {
        let der = to_der(bytes)?;
        let cert = Certificate::from_der(&der).ok()?;
        let tbs = &cert.tbs_certificate;
        let spki = tbs.subject_public_key_info.to_der().ok()?;
        let id = Sha1::digest(tbs.subject_public_key_info.subject_public_key.raw_bytes()).to_vec();
        Some(CertEntry {
            path: path.to_path_buf(),
            subject: tbs.subject.to_der().ok()?,
            issuer: tbs.issuer.to_der().ok()?,
            serial: tbs.serial_number.to_der().ok()?,
            spki,
            der,
            label: String::new(),
            id,
        })
    }

    pub fn read(path: &Path) -> Option<CertEntry> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() > super::key::MAX_KEY_FILE {
            return None;
        }
        Self::parse(path, &std::fs::read(path).ok()?)
    }
}
