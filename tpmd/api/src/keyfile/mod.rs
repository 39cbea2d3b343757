//! The TSS2 PRIVATE KEY file format of openssl_tpm2_engine, tpm2-openssl and
//! ssh-tpm-agent.
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//!     secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//!     authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//!     description [4] EXPLICIT UTF8String OPTIONAL,
//!     rsaParent   [5] EXPLICIT BOOLEAN OPTIONAL,     -- refused when TRUE
//!     parentName  [6] EXPLICIT OCTET STRING OPTIONAL, -- ignored
//!     parent      INTEGER,
//!     pubkey      OCTET STRING,   -- TPM2B_PUBLIC
//!     privkey     OCTET STRING    -- TPM2B_PRIVATE
//! }
//! ```
//!
//! Keys are either *loadable* (privkey is a TPM2B_PRIVATE made by the parent TPM, ready
//! for TPM2_Load) or *importable* (privkey is a duplicate built in software and secret
//! the encrypted seed, to be turned into a loadable key with TPM2_Import). Sealed data
//! is recognised and refused. Policies (`policy`, `authPolicy`) are parsed and written
//! back ([`policy`]).

use thiserror::Error;
use zeroize::Zeroizing;

mod asn1;
mod policy;

use asn1::*;
pub use policy::{AuthPolicy, PolicyStatement};

use crate::marshal::{parse_tpm2b, MarshalError};
use crate::public::{PublicError, TpmPublic};

/// PEM label of TSS2 key files.
pub const PEM_LABEL: &str = "TSS2 PRIVATE KEY";

/// DER contents (without tag and length) of OID 2.23.133.10.1.3, a loadable key.
const OID_LOADABLE: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x03];
/// DER contents of OID 2.23.133.10.1.4, an importable key.
const OID_IMPORTABLE: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x04];
/// DER contents of OID 2.23.133.10.1.5, sealed data.
const OID_SEALED: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x05];

/// Errors reading a TSS2 key file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyFileError {
    /// The input is not a TSS2 private key at all.
    #[error(
        "not a TSS2 private key: {0}; pass a file beginning with -----BEGIN TSS2 PRIVATE KEY----- (wrap a software key first with `tpm-keyctl wrap`)"
    )]
    NotTss2Key(String),
    /// It looks like a TSS2 key but its structure is damaged.
    #[error("TSS2 private key is truncated or corrupt: {0}; restore the key file from a backup")]
    Corrupt(String),
    /// A TSS2 file that holds sealed data rather than a key.
    #[error(
        "this TSS2 file holds sealed data, not a signing key; it cannot be used as a key, use a TSS2 key file instead"
    )]
    SealedData,
    /// The public area inside the file is not usable.
    #[error("TSS2 private key has an unusable public area: {0}")]
    Public(#[from] PublicError),
    /// The key's parent is the owner hierarchy's RSA primary, which tpmd does not make.
    #[error("this key's parent is an RSA primary key made on the fly (rsaParent), which tpmd does not support; wrap the key again under the SRK")]
    RsaParent,
    /// A TPM 1.2 key file (`TSS KEY BLOB` or raw TPM_KEY12) that cannot be used.
    #[error("TPM 1.2 key file is unusable: {0}")]
    Tpm12(String),
}

/// Whether a key file is ready for TPM2_Load or needs TPM2_Import first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFileKind {
    /// OID 2.23.133.10.1.3: privkey is a TPM2B_PRIVATE from the parent TPM.
    Loadable,
    /// OID 2.23.133.10.1.4: privkey is a duplicate and `secret` the encrypted seed.
    Importable,
}

/// A parsed TSS2 PRIVATE KEY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmKeyFile {
    /// Loadable or importable.
    pub kind: KeyFileKind,
    /// True when the key's auth value is empty (emptyAuth TRUE).
    pub empty_auth: bool,
    /// Handle of the parent: a persistent handle such as 0x81000001, or a hierarchy
    /// (0x40000001 = owner) meaning the standard primary created from a template.
    pub parent: u32,
    /// TPM2B_PUBLIC bytes, with their u16 size.
    pub public: Vec<u8>,
    /// TPM2B_PRIVATE bytes, with their u16 size.
    pub private: Vec<u8>,
    /// Importable keys only: TPM2B_ENCRYPTED_SECRET bytes, with their u16 size.
    pub secret: Option<Vec<u8>>,
    /// `policy [1]`: what a policy session runs before the key may be used (empty: the
    /// key is used with its auth value).
    pub policy: Vec<PolicyStatement>,
    /// `authPolicy [3]`: policies signed for a key whose policy starts with
    /// TPM2_PolicyAuthorize.
    pub auth_policies: Vec<AuthPolicy>,
    /// `description [4]`: a text for people.
    pub description: Option<String>,
}

// ---------------------------------------------------------------------------------------
// PEM helpers, shared with privkey.rs.

/// One PEM block found in a text.
pub(crate) struct PemBlock {
    /// Label between BEGIN and the dashes.
    pub label: String,
    /// RFC 1421 headers such as `Proc-Type: 4,ENCRYPTED`.
    pub headers: Vec<(String, String)>,
    /// Base64 body without whitespace.
    pub body: Zeroizing<String>,
    /// False if the END line was missing.
    pub complete: bool,
}

impl PemBlock {
    /// True if the block has legacy OpenSSL encryption (Proc-Type: 4,ENCRYPTED).
    pub fn has_legacy_encryption(&self) -> bool {
        self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("Proc-Type") && v.to_ascii_uppercase().contains("ENCRYPTED")
        }) || self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("DEK-Info"))
    }

    /// Decodes the base64 body.
    pub fn decode(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        // Re-wrap as strict RFC 7468 so that bodies wrapped at other widths or with CRLF
        // line endings still decode.
        let mut canonical = Zeroizing::new(String::with_capacity(self.body.len() + 100));
        canonical.push_str("-----BEGIN ");
        canonical.push_str(&self.label);
        canonical.push_str("-----\n");
        let bytes = self.body.as_bytes();
        for chunk in bytes.chunks(64) {
            canonical.push_str(&String::from_utf8_lossy(chunk));
            canonical.push('\n');
        }
        canonical.push_str("-----END ");
        canonical.push_str(&self.label);
        canonical.push_str("-----\n");
        der::pem::decode_vec(canonical.as_bytes())
            .map(|(_, data)| Zeroizing::new(data))
            .map_err(|e| format!("invalid base64 in the {} PEM block ({e})", self.label))
    }
}

fn boundary_label<'a>(line: &'a str, kind: &str) -> Option<&'a str> {
    line.strip_prefix("-----")?
        .strip_prefix(kind)?
        .strip_prefix(' ')?
        .strip_suffix("-----")
}

/// Finds the PEM blocks of a text, tolerating text around them.
pub(crate) fn find_pem_blocks(text: &str) -> Vec<PemBlock> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = boundary_label(line, "BEGIN") else {
            continue;
        };
        let mut block = PemBlock {
            label: label.to_string(),
            headers: Vec::new(),
            body: Zeroizing::new(String::new()),
            complete: false,
        };
        let mut in_headers = true;
        for line in lines.by_ref() {
            if let Some(end) = boundary_label(line, "END") {
                block.complete = end == label;
                break;
            }
            if in_headers {
                if let Some((key, value)) = line.split_once(':') {
                    block
                        .headers
                        .push((key.trim().to_string(), value.trim().to_string()));
                    continue;
                }
                if line.is_empty() {
                    continue;
                }
                in_headers = false;
            }
            block
                .body
                .extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
        }
        blocks.push(block);
    }
    blocks
}

fn oid_to_string(contents: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for b in contents {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
        if value > u64::MAX >> 8 {
            return "an invalid OID".to_string();
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Checks that `bytes` is exactly one TPM2B.
fn check_tpm2b(bytes: &[u8], what: &'static str) -> Result<(), KeyFileError> {
    parse_tpm2b(bytes, what)
        .map(|_| ())
        .map_err(|e: MarshalError| corrupt(e.to_string()))
}

impl TpmKeyFile {
    /// Parses a TSS2 key from PEM (text around the block is ignored) or raw DER.
    pub fn parse(bytes: &[u8]) -> Result<TpmKeyFile, KeyFileError> {
        if bytes.first() == Some(&TAG_SEQUENCE) {
            return Self::from_der(bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| {
            KeyFileError::NotTss2Key("the data is neither PEM text nor a DER SEQUENCE".into())
        })?;
        let blocks = find_pem_blocks(text);
        let Some(block) = blocks.iter().find(|b| b.label == PEM_LABEL) else {
            return Err(KeyFileError::NotTss2Key(match blocks.first() {
                Some(b) => format!("found a \"{}\" PEM block instead", b.label),
                None => "no PEM block found".to_string(),
            }));
        };
        if !block.complete {
            return Err(corrupt("the PEM block has no END line"));
        }
        let der = block.decode().map_err(KeyFileError::Corrupt)?;
        Self::from_der(&der)
    }

    /// Parses the DER encoding.
    pub fn from_der(der: &[u8]) -> Result<TpmKeyFile, KeyFileError> {
        let mut outer = Der::new(der);
        if outer.peek_tag() != Some(TAG_SEQUENCE) {
            return Err(KeyFileError::NotTss2Key(
                "the data does not start with a DER SEQUENCE".into(),
            ));
        }
        let seq = outer.read(TAG_SEQUENCE, "the TPMKey SEQUENCE")?;
        if !outer.is_empty() {
            return Err(corrupt("unexpected bytes after the TPMKey SEQUENCE"));
        }
        let mut r = Der::new(seq);
        if r.peek_tag() != Some(TAG_OID) {
            return Err(KeyFileError::NotTss2Key(
                "the SEQUENCE does not start with a TSS2 key type OID".into(),
            ));
        }
        let oid = r.read(TAG_OID, "the key type OID")?;
        let kind = match oid {
            OID_LOADABLE => KeyFileKind::Loadable,
            OID_IMPORTABLE => KeyFileKind::Importable,
            OID_SEALED => return Err(KeyFileError::SealedData),
            other => {
                return Err(KeyFileError::NotTss2Key(format!(
                    "key type OID {} is not a TSS2 key type",
                    oid_to_string(other)
                )))
            }
        };

        let mut empty_auth = false;
        let mut policy = Vec::new();
        let mut auth_policies = Vec::new();
        let mut description = None;
        let mut secret = None;
        if r.peek_tag() == Some(TAG_CONTEXT_0) {
            let mut inner = Der::new(r.read(TAG_CONTEXT_0, "emptyAuth [0]")?);
            let value = inner.read(TAG_BOOLEAN, "emptyAuth BOOLEAN")?;
            if value.len() != 1 || !inner.is_empty() {
                return Err(corrupt("emptyAuth is not a single BOOLEAN"));
            }
            empty_auth = value[0] != 0;
        }
        if r.peek_tag() == Some(TAG_CONTEXT_1) {
            let mut inner = Der::new(r.read(TAG_CONTEXT_1, "policy [1]")?);
            policy = policy::read_statements(&mut inner)?;
        }
        if r.peek_tag() == Some(TAG_CONTEXT_2) {
            let mut inner = Der::new(r.read(TAG_CONTEXT_2, "secret [2]")?);
            let value = inner.read(TAG_OCTET_STRING, "secret OCTET STRING")?;
            if !inner.is_empty() {
                return Err(corrupt("unexpected bytes after the secret"));
            }
            check_tpm2b(value, "secret TPM2B_ENCRYPTED_SECRET")?;
            secret = Some(value.to_vec());
        }
        if r.peek_tag() == Some(TAG_CONTEXT_3) {
            let mut inner = Der::new(r.read(TAG_CONTEXT_3, "authPolicy [3]")?);
            auth_policies = policy::read_auth_policies(&mut inner)?;
        }
        if r.peek_tag() == Some(TAG_CONTEXT_4) {
            let mut inner = Der::new(r.read(TAG_CONTEXT_4, "description [4]")?);
            let text = inner.read(TAG_UTF8_STRING, "description UTF8String")?;
            description = Some(String::from_utf8_lossy(text).into_owned());
        }
        if r.peek_tag() == Some(TAG_CONTEXT_5) {
            let mut inner = Der::new(r.read(TAG_CONTEXT_5, "rsaParent [5]")?);
            let value = inner.read(TAG_BOOLEAN, "rsaParent BOOLEAN")?;
            if value.first().is_some_and(|b| *b != 0) {
                return Err(KeyFileError::RsaParent);
            }
        }
        if r.peek_tag() == Some(TAG_CONTEXT_6) {
            // parentName: only a shortcut for the parent's name, which tpmd reads.
            r.read(TAG_CONTEXT_6, "parentName [6]")?;
        }
        let parent = parse_unsigned(r.read(TAG_INTEGER, "parent INTEGER")?)?;
        let public = r.read(TAG_OCTET_STRING, "pubkey OCTET STRING")?.to_vec();
        let private = r.read(TAG_OCTET_STRING, "privkey OCTET STRING")?.to_vec();
        if !r.is_empty() {
            return Err(corrupt("unexpected fields after privkey"));
        }
        check_tpm2b(&public, "pubkey TPM2B_PUBLIC")?;
        check_tpm2b(&private, "privkey TPM2B_PRIVATE")?;
        match (kind, &secret) {
            (KeyFileKind::Importable, None) => {
                return Err(corrupt("an importable key has no encrypted seed (secret)"))
            }
            (KeyFileKind::Loadable, Some(_)) => {
                return Err(corrupt("a loadable key carries an import secret"))
            }
            _ => {}
        }
        Ok(TpmKeyFile {
            kind,
            empty_auth,
            parent,
            public,
            private,
            secret,
            policy,
            auth_policies,
            description,
        })
    }

    /// DER encoding, policies and description included.
    ///
    /// emptyAuth is always written, TRUE or FALSE. openssl_tpm2_engine writes only TRUE
    /// and leaves it out otherwise, but the tpm2-openssl provider reads a missing
    /// emptyAuth as "no password": it then never asks for one and each use fails the
    /// TPM's HMAC check and counts towards dictionary-attack lockout. An explicit FALSE
    /// is valid for every reader (tpm2-openssl writes it the same way).
    pub fn to_der(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.public.len() + self.private.len() + 64);
        let oid = match self.kind {
            KeyFileKind::Loadable => OID_LOADABLE,
            KeyFileKind::Importable => OID_IMPORTABLE,
        };
        put_der(&mut body, TAG_OID, oid);
        let flag = if self.empty_auth { 0xFF } else { 0x00 };
        put_der(&mut body, TAG_CONTEXT_0, &[TAG_BOOLEAN, 0x01, flag]);
        if !self.policy.is_empty() {
            let mut inner = Vec::new();
            policy::write_statements(&mut inner, &self.policy);
            put_der(&mut body, TAG_CONTEXT_1, &inner);
        }
        if let Some(secret) = &self.secret {
            let mut inner = Vec::with_capacity(secret.len() + 4);
            put_der(&mut inner, TAG_OCTET_STRING, secret);
            put_der(&mut body, TAG_CONTEXT_2, &inner);
        }
        if !self.auth_policies.is_empty() {
            let mut inner = Vec::new();
            policy::write_auth_policies(&mut inner, &self.auth_policies);
            put_der(&mut body, TAG_CONTEXT_3, &inner);
        }
        if let Some(description) = &self.description {
            let mut inner = Vec::new();
            put_der(&mut inner, TAG_UTF8_STRING, description.as_bytes());
            put_der(&mut body, TAG_CONTEXT_4, &inner);
        }
        put_der(&mut body, TAG_INTEGER, &der_unsigned(self.parent));
        put_der(&mut body, TAG_OCTET_STRING, &self.public);
        put_der(&mut body, TAG_OCTET_STRING, &self.private);
        let mut out = Vec::with_capacity(body.len() + 4);
        put_der(&mut out, TAG_SEQUENCE, &body);
        out
    }

    /// PEM encoding: "TSS2 PRIVATE KEY", base64 in 64 columns, LF line endings.
    pub fn to_pem(&self) -> String {
        // Encoding only fails for labels or lengths far beyond any key file.
        der::pem::encode_string(PEM_LABEL, der::pem::LineEnding::LF, &self.to_der())
            .unwrap_or_default()
    }

    /// Whether using the key needs a policy session.
    pub fn has_policy(&self) -> bool {
        !self.policy.is_empty() || !self.auth_policies.is_empty()
    }

    /// The key's public area.
    pub fn public_area(&self) -> Result<TpmPublic, KeyFileError> {
        Ok(TpmPublic::from_tpm2b(&self.public)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::marshal::tpm2b;

    fn sample_public() -> Vec<u8> {
        TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32]).to_tpm2b()
    }

    fn importable() -> TpmKeyFile {
        TpmKeyFile {
            kind: KeyFileKind::Importable,
            empty_auth: true,
            parent: 0x8100_0001,
            public: sample_public(),
            private: tpm2b(&[0x55; 200]),
            secret: Some(tpm2b(&[0x66; 256])),
            policy: Vec::new(),
            auth_policies: Vec::new(),
            description: None,
        }
    }

    #[test]
    fn hand_built_vector() {
        let key = TpmKeyFile {
            kind: KeyFileKind::Loadable,
            empty_auth: true,
            parent: 0x8100_0001,
            public: vec![0x00, 0x02, 0xAA, 0xBB],
            private: vec![0x00, 0x01, 0xCC],
            secret: None,
            policy: Vec::new(),
            auth_policies: Vec::new(),
            description: None,
        };
        let expected: &[u8] = &[
            0x30, 0x1F, // SEQUENCE, 31 bytes
            0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x03, // OID 2.23.133.10.1.3
            0xA0, 0x03, 0x01, 0x01, 0xFF, // [0] emptyAuth TRUE
            0x02, 0x05, 0x00, 0x81, 0x00, 0x00, 0x01, // parent 0x81000001
            0x04, 0x04, 0x00, 0x02, 0xAA, 0xBB, // pubkey
            0x04, 0x03, 0x00, 0x01, 0xCC, // privkey
        ];
        assert_eq!(key.to_der(), expected);
        assert_eq!(TpmKeyFile::from_der(expected).unwrap(), key);

        let mut with_auth = key.clone();
        with_auth.empty_auth = false;
        with_auth.parent = 0x4000_0001;
        let expected: &[u8] = &[
            0x30, 0x1E, // SEQUENCE, 30 bytes
            0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x03, // OID
            0xA0, 0x03, 0x01, 0x01, 0x00, // [0] emptyAuth FALSE
            0x02, 0x04, 0x40, 0x00, 0x00, 0x01, // parent 0x40000001
            0x04, 0x04, 0x00, 0x02, 0xAA, 0xBB, // pubkey
            0x04, 0x03, 0x00, 0x01, 0xCC, // privkey
        ];
        assert_eq!(with_auth.to_der(), expected);
        assert_eq!(TpmKeyFile::from_der(expected).unwrap(), with_auth);

        // Written by openssl_tpm2_engine for a key with a password: no emptyAuth.
        let absent: &[u8] = &[
            0x30, 0x19, // SEQUENCE, 25 bytes
            0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01, 0x03, // OID
            0x02, 0x04, 0x40, 0x00, 0x00, 0x01, // parent 0x40000001
            0x04, 0x04, 0x00, 0x02, 0xAA, 0xBB, // pubkey
            0x04, 0x03, 0x00, 0x01, 0xCC, // privkey
        ];
        assert_eq!(TpmKeyFile::from_der(absent).unwrap(), with_auth);
    }

    #[test]
    fn round_trip_is_byte_exact() {
        let key = importable();
        let der = key.to_der();
        // Long-form lengths are exercised: the body is longer than 255 bytes.
        assert_eq!(&der[..2], &[0x30, 0x82]);
        let parsed = TpmKeyFile::from_der(&der).unwrap();
        assert_eq!(parsed, key);
        assert_eq!(parsed.to_der(), der);

        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN TSS2 PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END TSS2 PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(TpmKeyFile::parse(pem.as_bytes()).unwrap(), key);
        assert_eq!(TpmKeyFile::parse(&der).unwrap(), key);
        assert_eq!(
            parsed.public_area().unwrap(),
            TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32])
        );
    }

    #[test]
    fn pem_with_surrounding_text_and_crlf() {
        let key = importable();
        let pem = key.to_pem().replace('\n', "\r\n");
        let text = format!("Key for host x\r\n\r\n{pem}\r\ntrailing notes\r\n");
        assert_eq!(TpmKeyFile::parse(text.as_bytes()).unwrap(), key);
    }

    #[test]
    fn truncation_never_panics() {
        let der = importable().to_der();
        for len in 0..der.len() {
            assert!(TpmKeyFile::parse(&der[..len]).is_err(), "DER length {len}");
        }
        let pem = importable().to_pem();
        // Every cut that loses part of the END line or anything before it.
        for len in 0..pem.trim_end().len() {
            assert!(
                TpmKeyFile::parse(&pem.as_bytes()[..len]).is_err(),
                "PEM length {len}"
            );
        }
    }

    #[test]
    fn error_kinds() {
        assert!(matches!(
            TpmKeyFile::parse(b"hello"),
            Err(KeyFileError::NotTss2Key(_))
        ));
        assert!(matches!(
            TpmKeyFile::parse(
                b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            ),
            Err(KeyFileError::NotTss2Key(_))
        ));
        // Sealed data OID.
        let mut sealed = importable();
        sealed.kind = KeyFileKind::Loadable;
        sealed.secret = None;
        let mut der = sealed.to_der();
        let oid_at = der.windows(6).position(|w| w == OID_LOADABLE).unwrap();
        der[oid_at + 5] = 0x05;
        assert_eq!(TpmKeyFile::from_der(&der), Err(KeyFileError::SealedData));
        // Unknown OID.
        der[oid_at + 5] = 0x09;
        assert!(matches!(
            TpmKeyFile::from_der(&der),
            Err(KeyFileError::NotTss2Key(m)) if m.contains("2.23.133.10.1.9")
        ));
        // Importable without secret.
        let mut bad = importable();
        bad.secret = None;
        assert!(matches!(
            TpmKeyFile::from_der(&bad.to_der()),
            Err(KeyFileError::Corrupt(_))
        ));
        // Corrupt TPM2B inside.
        let mut bad = importable();
        bad.public.push(0);
        assert!(matches!(
            TpmKeyFile::from_der(&bad.to_der()),
            Err(KeyFileError::Corrupt(_))
        ));
    }

    #[test]
    fn policies_round_trip() {
        let mut key = TpmKeyFile::parse(&data("tpm2-openssl-p256.tss2.pem")).unwrap();
        assert!(!key.has_policy());
        key.policy = vec![
            PolicyStatement {
                command_code: 0x17F,
                command_policy: vec![0, 2, 0xAA, 0xBB, 0, 0, 0, 1, 0, 0x0B, 3, 0x80, 0, 0],
            },
            PolicyStatement {
                command_code: 0x16B,
                command_policy: vec![],
            },
        ];
        key.auth_policies = vec![AuthPolicy {
            name: Some("kernel 6.1".into()),
            statements: vec![PolicyStatement {
                command_code: 0x16A,
                command_policy: vec![1, 2, 3],
            }],
        }];
        key.description = Some("work laptop".into());
        let again = TpmKeyFile::from_der(&key.to_der()).unwrap();
        assert_eq!(again, key);
        assert!(again.has_policy());
        // An empty TPMPolicy is not a policy statement.
        let mut body = Vec::new();
        put_der(&mut body, TAG_OID, OID_LOADABLE);
        put_der(&mut body, TAG_CONTEXT_1, &[0x30, 0x02, 0x30, 0x00]);
        put_der(&mut body, TAG_INTEGER, &der_unsigned(0x8100_0001));
        put_der(&mut body, TAG_OCTET_STRING, &[0, 1, 9]);
        put_der(&mut body, TAG_OCTET_STRING, &[0, 0]);
        let mut der = Vec::new();
        put_der(&mut der, TAG_SEQUENCE, &body);
        assert!(matches!(
            TpmKeyFile::from_der(&der),
            Err(KeyFileError::Corrupt(_))
        ));
    }

    fn data(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Keys written by the tpm2-openssl provider (`openssl genpkey -provider tpm2`).
    #[test]
    fn reads_tpm2_openssl_keys() {
        for (file, spki, type_name) in [
            (
                "tpm2-openssl-rsa.tss2.pem",
                "tpm2-openssl-rsa.spki.pem",
                "rsa2048",
            ),
            (
                "tpm2-openssl-p256.tss2.pem",
                "tpm2-openssl-p256.spki.pem",
                "ecc-p256",
            ),
        ] {
            let pem = data(file);
            let key = TpmKeyFile::parse(&pem).unwrap();
            assert_eq!(key.kind, KeyFileKind::Loadable);
            assert_eq!(key.parent, 0x4000_0001);
            assert!(key.empty_auth);
            assert!(!key.has_policy());
            let public = key.public_area().unwrap();
            assert_eq!(public.key_type_name(), type_name);
            assert_eq!(
                public.to_spki_pem().unwrap(),
                String::from_utf8(data(spki)).unwrap()
            );
            // tpm2-openssl writes emptyAuth TRUE as 0x01 rather than DER's 0xFF; apart
            // from that byte our encoding is the same.
            let text = std::str::from_utf8(&pem).unwrap();
            let original = find_pem_blocks(text)[0].decode().unwrap();
            let mut ours = key.to_der();
            assert_eq!(ours.len(), original.len());
            let at = ours
                .windows(3)
                .position(|w| w == [0x01, 0x01, 0xFF])
                .unwrap();
            ours[at + 2] = 0x01;
            assert_eq!(ours, *original);
        }
    }

    /// tpm2-openssl writes emptyAuth FALSE explicitly for a key with a password, as we do.
    #[test]
    fn tpm2_openssl_key_with_auth_is_byte_identical() {
        let pem = data("tpm2-openssl-p256-auth.tss2.pem");
        let key = TpmKeyFile::parse(&pem).unwrap();
        assert!(!key.empty_auth);
        assert_eq!(key.parent, 0x8100_0001);
        assert_eq!(key.to_pem().as_bytes(), pem.as_slice());
    }

    /// A loadable key written by this module around `tpm2_import` output, which the
    /// tpm2-openssl provider signed with.
    #[test]
    fn own_loadable_file_round_trips() {
        let pem = data("wrapped-rsa-loadable.tss2.pem");
        let key = TpmKeyFile::parse(&pem).unwrap();
        assert_eq!(key.parent, 0x8100_0001);
        assert_eq!(key.to_pem().as_bytes(), pem.as_slice());
    }

    #[test]
    fn negative_or_huge_parent_rejected() {
        assert!(parse_unsigned(&[0x81]).is_err());
        assert!(parse_unsigned(&[0x01, 0, 0, 0, 0]).is_err());
        assert_eq!(parse_unsigned(&[0x00, 0x81, 0, 0, 1]).unwrap(), 0x8100_0001);
        assert_eq!(der_unsigned(0), vec![0]);
        assert_eq!(der_unsigned(0x7f), vec![0x7f]);
        assert_eq!(der_unsigned(0x80), vec![0, 0x80]);
    }

    #[test]
    fn oid_strings() {
        assert_eq!(oid_to_string(OID_SEALED), "2.23.133.10.1.5");
        assert_eq!(
            oid_to_string(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D]),
            "1.2.840.113549"
        );
    }
}
