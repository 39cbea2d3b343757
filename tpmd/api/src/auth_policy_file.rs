//! Authorized (signed) policies kept beside key files rather than inside them: a
//! `*.policy` file holds one PEM block `TSS2 AUTH POLICY` whose DER is one TPMAuthPolicy,
//! the same structure as one element of a key file's `authPolicy [3]`. Its statements end
//! with the owner's TPM2_PolicyAuthorize and its signature.
//!
//! tpmd reads the system directory ([`SYSTEM_POLICY_DIR`]); the client library reads the
//! user's ([`user_policy_dir`]) and appends what matches to the key bytes it sends, so
//! key files are never rewritten when the owner signs a policy for new PCR values.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::keyfile::{find_pem_blocks, AuthPolicy, KeyFileError, PolicyStatement};
use crate::policy::{Authorize, CC_POLICY_AUTHORIZE};

/// PEM label of a signed policy file.
pub const PEM_LABEL: &str = "TSS2 AUTH POLICY";
/// File name extension tpmd and the client look for.
pub const EXTENSION: &str = "policy";
/// Where packaging and administrators put signed policies for every user.
pub const SYSTEM_POLICY_DIR: &str = "/etc/tpmd/policies";
/// Environment variable naming tpmd's policy directory instead of [`SYSTEM_POLICY_DIR`].
pub const POLICY_DIR_ENV: &str = "TPMD_POLICY_DIR";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthPolicyFileError {
    #[error("not a signed policy file: {0}; pass a file beginning with -----BEGIN TSS2 AUTH POLICY----- (made by `tpm-keyctl policy sign`)")]
    NotPolicyFile(String),
    #[error(
        "signed policy file is corrupt: {0}; sign the policy again with `tpm-keyctl policy sign`"
    )]
    Corrupt(String),
    #[error("the signed policy does not end with a signed TPM2_PolicyAuthorize; sign it with `tpm-keyctl policy sign`")]
    NotAuthorized,
}

impl From<KeyFileError> for AuthPolicyFileError {
    fn from(e: KeyFileError) -> Self {
        match e {
            KeyFileError::Corrupt(m) => AuthPolicyFileError::Corrupt(m),
            other => AuthPolicyFileError::Corrupt(other.to_string()),
        }
    }
}

/// Parses a signed policy file: PEM (text around the block is ignored) or raw DER. The
/// policy must end with a PolicyAuthorize that carries a signature.
pub fn parse(bytes: &[u8]) -> Result<AuthPolicy, AuthPolicyFileError> {
    let policy = if bytes.first() == Some(&0x30) {
        AuthPolicy::from_der(bytes)?
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            AuthPolicyFileError::NotPolicyFile("the data is neither PEM text nor DER".into())
        })?;
        let blocks = find_pem_blocks(text);
        let Some(block) = blocks.iter().find(|b| b.label == PEM_LABEL) else {
            return Err(AuthPolicyFileError::NotPolicyFile(match blocks.first() {
                Some(b) => format!("found a \"{}\" PEM block instead", b.label),
                None => "no PEM block found".to_string(),
            }));
        };
        if !block.complete {
            return Err(AuthPolicyFileError::Corrupt(
                "the PEM block has no END line".into(),
            ));
        }
        let der = block.decode().map_err(AuthPolicyFileError::Corrupt)?;
        AuthPolicy::from_der(&der)?
    };
    match signed_authorize(&policy) {
        Some(authorize) if authorize.has_signature() => Ok(policy),
        _ => Err(AuthPolicyFileError::NotAuthorized),
    }
}

/// The PEM text of a signed policy file.
pub fn to_pem(policy: &AuthPolicy) -> String {
    // Encoding only fails for lengths far beyond any policy.
    der::pem::encode_string(PEM_LABEL, der::pem::LineEnding::LF, &policy.to_der())
        .unwrap_or_default()
}

/// The PolicyAuthorize that ends a signed policy, taken apart.
pub fn signed_authorize(policy: &AuthPolicy) -> Option<Authorize> {
    let last = policy.statements.last()?;
    if last.command_code != CC_POLICY_AUTHORIZE {
        return None;
    }
    Authorize::parse(&last.command_policy).ok()
}

/// The PolicyAuthorize a key's own policy starts with, if it does: the owner key and
/// policyRef a signed policy must name to serve that key.
pub fn key_authorize(key_policy: &[PolicyStatement]) -> Option<Authorize> {
    let first = key_policy.first()?;
    if first.command_code != CC_POLICY_AUTHORIZE {
        return None;
    }
    Authorize::parse(&first.command_policy).ok()
}

/// Whether `policy` was signed for keys whose policy starts with `key`: same owner key
/// (by name) and same policyRef.
pub fn serves(key: &Authorize, policy: &AuthPolicy) -> bool {
    let Some(signed) = signed_authorize(policy) else {
        return false;
    };
    signed.policy_ref == key.policy_ref
        && match (signed.signer.name(), key.signer.name()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}

/// The user's own signed policies: `$XDG_CONFIG_HOME/tpmd/policies`, else
/// `~/.config/tpmd/policies`.
pub fn user_policy_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(config.join("tpmd").join("policies"))
}

/// One `*.policy` file of a directory, read or not.
#[derive(Debug)]
pub struct PolicyFile {
    pub path: PathBuf,
    pub policy: Result<AuthPolicy, AuthPolicyFileError>,
}

/// The `*.policy` files of `dir`, in name order. A missing or unreadable directory has
/// none; a file that cannot be read or parsed is listed with its error, so that the
/// caller can say which one is bad and still use the others.
pub fn read_dir(dir: &Path) -> Vec<PolicyFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == EXTENSION) && p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let policy = std::fs::read(&path)
                .map_err(|e| AuthPolicyFileError::NotPolicyFile(format!("cannot read it: {e}")))
                .and_then(|bytes| parse(&bytes));
            PolicyFile { path, policy }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::marshal::{put_tpm2b, put_u16, TPM_ALG_RSASSA, TPM_ALG_SHA256};
    use crate::policy::{authorize_statement, parse_selection, pcr_statement};
    use crate::public::TpmPublic;

    fn owner() -> TpmPublic {
        TpmPublic::standard_ecc_srk_with_point(&[7; 32], &[8; 32])
    }

    fn fake_signature() -> Vec<u8> {
        let mut sig = Vec::new();
        put_u16(&mut sig, TPM_ALG_RSASSA);
        put_u16(&mut sig, TPM_ALG_SHA256);
        put_tpm2b(&mut sig, &[0x5A; 256]);
        sig
    }

    fn signed(policy_ref: &[u8], name: Option<&str>) -> AuthPolicy {
        let banks = parse_selection("sha256:16").unwrap();
        AuthPolicy {
            name: name.map(str::to_string),
            statements: vec![
                pcr_statement(&banks, &[3; 32]),
                authorize_statement(&owner(), policy_ref, &fake_signature()),
            ],
        }
    }

    #[test]
    fn pem_round_trip() {
        for name in [None, Some("kernel 6.12.1")] {
            let policy = signed(b"laptop", name);
            let pem = to_pem(&policy);
            assert!(pem.starts_with("-----BEGIN TSS2 AUTH POLICY-----\n"));
            assert!(pem.ends_with("-----END TSS2 AUTH POLICY-----\n"));
            assert_eq!(parse(pem.as_bytes()).unwrap(), policy);
            assert_eq!(parse(&policy.to_der()).unwrap(), policy);
            let framed = format!("# for the 6.12 kernel\r\n{}", pem.replace('\n', "\r\n"));
            assert_eq!(parse(framed.as_bytes()).unwrap(), policy);
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        assert!(matches!(
            parse(b"hello"),
            Err(AuthPolicyFileError::NotPolicyFile(_))
        ));
        let key_pem = "-----BEGIN TSS2 PRIVATE KEY-----\nMAA=\n-----END TSS2 PRIVATE KEY-----\n";
        assert!(matches!(
            parse(key_pem.as_bytes()),
            Err(AuthPolicyFileError::NotPolicyFile(m)) if m.contains("TSS2 PRIVATE KEY")
        ));
        // A policy that does not end with PolicyAuthorize, or whose signature is absent.
        let mut unsigned = signed(b"", None);
        unsigned.statements.pop();
        assert_eq!(
            parse(&unsigned.to_der()),
            Err(AuthPolicyFileError::NotAuthorized)
        );
        let mut no_signature = signed(b"", None);
        no_signature.statements[1] = authorize_statement(&owner(), b"", &[]);
        assert_eq!(
            parse(to_pem(&no_signature).as_bytes()),
            Err(AuthPolicyFileError::NotAuthorized)
        );
        let der = signed(b"x", None).to_der();
        for len in 0..der.len() {
            assert!(parse(&der[..len]).is_err(), "length {len}");
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(matches!(
            parse(&trailing),
            Err(AuthPolicyFileError::Corrupt(_))
        ));
    }

    #[test]
    fn matches_by_owner_and_reference() {
        let key_policy = vec![authorize_statement(&owner(), b"laptop", &[])];
        let key = key_authorize(&key_policy).unwrap();
        assert!(serves(&key, &signed(b"laptop", None)));
        assert!(!serves(&key, &signed(b"desktop", None)));
        let other = TpmPublic::standard_ecc_srk_with_point(&[9; 32], &[8; 32]);
        let mut foreign = signed(b"laptop", None);
        foreign.statements[1] = authorize_statement(&other, b"laptop", &fake_signature());
        assert!(!serves(&key, &foreign));
        assert!(key_authorize(&[]).is_none());
        assert!(key_authorize(&signed(b"", None).statements).is_none());
    }

    #[test]
    fn directory_lists_policy_files_with_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_dir(&dir.path().join("missing")).is_empty());
        std::fs::write(dir.path().join("b.policy"), to_pem(&signed(b"b", None))).unwrap();
        std::fs::write(dir.path().join("a.policy"), "garbage").unwrap();
        std::fs::write(dir.path().join("c.txt"), to_pem(&signed(b"c", None))).unwrap();
        let files = read_dir(dir.path());
        assert_eq!(files.len(), 2);
        assert!(files[0].path.ends_with("a.policy") && files[0].policy.is_err());
        assert_eq!(files[1].policy.as_ref().unwrap(), &signed(b"b", None));
    }
}
