//! TPM 1.2 key files: the `TSS KEY BLOB` PEM of openssl_tpm_engine and GnuTLS
//! (`tpmkey:`), a DER OCTET STRING holding the TPM_KEY12 blob, and raw TPM_KEY12 /
//! TPM_KEY blobs as trousers-based tools write them.

use der::asn1::OctetString;
use der::pem::LineEnding;
use der::{Decode, Encode};

use super::KeyError;
use crate::codec::Key12;

pub const PEM_LABEL: &str = "TSS KEY BLOB";

/// How a key file was stored, so it can be written back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileFormat {
    /// `-----BEGIN TSS KEY BLOB-----`.
    Pem,
    /// The DER OCTET STRING without PEM armour.
    Der,
    /// The TPM_KEY12 / TPM_KEY bytes themselves.
    Raw,
}

/// A parsed TPM 1.2 key file: the blob bytes exactly as stored and their structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    pub format: KeyFileFormat,
    pub blob: Vec<u8>,
    pub key: Key12,
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| bytes[i..].starts_with(b"-----BEGIN "))
}

/// Whether `bytes` are a TPM 1.2 key file (parses it fully).
pub fn is_tpm12_key_file(bytes: &[u8]) -> bool {
    read(bytes).is_ok()
}

/// Reads a `TSS KEY BLOB` PEM, its DER, or a raw blob.
pub fn read(bytes: &[u8]) -> Result<KeyFile, KeyError> {
    if looks_like_pem(bytes) {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| KeyError::NotKeyFile("the PEM is not text".into()))?;
        let start = text.find("-----BEGIN ").unwrap_or(0);
        let (label, der) = der::pem::decode_vec(text[start..].trim_end().as_bytes())
            .map_err(|e| KeyError::NotKeyFile(format!("bad PEM: {e}")))?;
        if label != PEM_LABEL {
            return Err(KeyError::NotKeyFile(format!("the PEM label is `{label}`")));
        }
        let blob = octet_string(&der)?;
        let key = Key12::from_bytes(&blob)?;
        return Ok(KeyFile {
            format: KeyFileFormat::Pem,
            blob,
            key,
        });
    }
    if bytes.first() == Some(&0x04) {
        let blob = octet_string(bytes)?;
        let key = Key12::from_bytes(&blob)?;
        return Ok(KeyFile {
            format: KeyFileFormat::Der,
            blob,
            key,
        });
    }
    let key = Key12::from_bytes(bytes)?;
    Ok(KeyFile {
        format: KeyFileFormat::Raw,
        blob: bytes.to_vec(),
        key,
    })
}

fn octet_string(der: &[u8]) -> Result<Vec<u8>, KeyError> {
    OctetString::from_der(der)
        .map(|o| o.into_bytes())
        .map_err(|e| KeyError::NotKeyFile(format!("the DER is not an OCTET STRING: {e}")))
}

/// The `TSS KEY BLOB` PEM of a blob.
pub fn write_pem(blob: &[u8]) -> Result<String, KeyError> {
    let der = OctetString::new(blob)
        .and_then(|o| o.to_der())
        .map_err(|e| KeyError::NotKeyFile(format!("cannot encode: {e}")))?;
    der::pem::encode_string(PEM_LABEL, LineEnding::LF, &der)
        .map_err(|e| KeyError::NotKeyFile(format!("cannot encode: {e}")))
}

/// Writes `blob` in `format`.
pub fn write(blob: &[u8], format: KeyFileFormat) -> Result<Vec<u8>, KeyError> {
    match format {
        KeyFileFormat::Pem => Ok(write_pem(blob)?.into_bytes()),
        KeyFileFormat::Der => OctetString::new(blob)
            .and_then(|o| o.to_der())
            .map_err(|e| KeyError::NotKeyFile(format!("cannot encode: {e}"))),
        KeyFileFormat::Raw => Ok(blob.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::consts::{alg, auth_usage, key_usage};
    use crate::codec::KeyParms;

    fn blob() -> Vec<u8> {
        let mut key = Key12::template(
            key_usage::LEGACY,
            2,
            auth_usage::ALWAYS,
            KeyParms::rsa(
                2048,
                alg::ES_RSAESOAEP_SHA1_MGF1,
                alg::SS_RSASSAPKCS1V15_DER,
            ),
        );
        key.modulus = vec![0xC3; 256];
        key.enc_data = vec![0x5A; 256];
        key.to_bytes()
    }

    #[test]
    fn pem_round_trip() {
        let blob = blob();
        let pem = write_pem(&blob).unwrap();
        assert!(pem.starts_with("-----BEGIN TSS KEY BLOB-----\n"));
        assert!(pem.trim_end().ends_with("-----END TSS KEY BLOB-----"));
        let file = read(pem.as_bytes()).unwrap();
        assert_eq!(file.format, KeyFileFormat::Pem);
        assert_eq!(file.blob, blob);
        // DER: OCTET STRING with a long-form length (0x04 0x82 hi lo).
        let der = write(&blob, KeyFileFormat::Der).unwrap();
        assert_eq!(&der[..2], &[0x04, 0x82]);
        assert_eq!(read(&der).unwrap().format, KeyFileFormat::Der);
        let raw = read(&blob).unwrap();
        assert_eq!(raw.format, KeyFileFormat::Raw);
        assert_eq!(raw.key, file.key);
    }

    #[test]
    fn other_files_are_refused() {
        assert!(
            read(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
                .is_err()
        );
        assert!(read(b"-----BEGIN TSS KEY BLOB-----\n!!\n-----END TSS KEY BLOB-----\n").is_err());
        assert!(read(b"").is_err());
        assert!(read(&[0x04, 0x01, 0x00]).is_err());
        assert!(!is_tpm12_key_file(b"-----BEGIN TSS2 PRIVATE KEY-----\n"));
    }
}
