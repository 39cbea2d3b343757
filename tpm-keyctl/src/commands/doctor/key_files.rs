//! The key files doctor knows about: TPM 2.0 keys without an auth value must carry
//! noDA, or a dictionary-attack lockout that anyone on the machine can cause stops them
//! signing. A TPM key's attributes are fixed when it is made, so the fix is a new key.
//!
//! Read offline, without tpmd. TPM 1.2 key files have no noDA and are not mentioned.

use std::path::{Path, PathBuf};

use tpmd_api::client::is_tpm_key_file;
use tpmd_api::marshal::{TPMA_OBJECT_NO_DA, TPMA_OBJECT_SENSITIVE_DATA_ORIGIN};
use tpmd_api::TpmKeyFile;

use super::{Finding, Status};

const CHECK: &str = "key file";
/// Key files are small; bigger files in ~/.ssh are something else and are not read.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Where tpmd's frontends find keys: ~/.ssh (tpmd-ssh-agent, the PKCS#11 module) and the
/// PKCS#11 module's store.
pub(super) fn default_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".local/share")));
    home.map(|h| h.join(".ssh"))
        .into_iter()
        .chain(data.map(|d| d.join("tpmd/keys")))
        .collect()
}

/// What one TPM key file needs, if anything.
enum Verdict {
    Fine,
    /// No auth value, no noDA; `born_in_tpm` if no software copy of it ever existed.
    LacksNoDa {
        born_in_tpm: bool,
    },
}

fn judge(bytes: &[u8]) -> Option<Verdict> {
    let file = TpmKeyFile::parse(bytes).ok()?;
    let public = file.public_area().ok()?;
    // A key with an auth value (or a policy) is meant to be DA-protected.
    if !file.empty_auth || file.has_policy() || public.has_attributes(TPMA_OBJECT_NO_DA) {
        return Some(Verdict::Fine);
    }
    Some(Verdict::LacksNoDa {
        born_in_tpm: public.has_attributes(TPMA_OBJECT_SENSITIVE_DATA_ORIGIN),
    })
}

fn lacks_no_da(path: &Path, born_in_tpm: bool) -> Finding {
    let shown = path.display();
    let fix = if born_in_tpm {
        format!(
            "this key was made in the TPM and its attributes cannot be changed: make a new one with `tpm-keyctl generate -f -o {shown}` and put its public key where the old one was used"
        )
    } else {
        format!(
            "re-wrap it from the original private key: `tpm-keyctl wrap -f -o {shown} ORIGINAL_KEY` (a TPM key's attributes cannot be changed)"
        )
    };
    Finding::problem(
        Status::Warn,
        CHECK,
        format!(
            "{shown} has no auth value but lacks noDA, so it stops signing whenever the TPM is in dictionary-attack lockout"
        ),
        fix,
    )
}

pub(super) fn read_small(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE {
        return Ok(None);
    }
    std::fs::read(path).map(Some)
}

/// Checks every TPM key file of a directory; other files are passed over in silence.
fn scan_dir(dir: &Path, findings: &mut Vec<Finding>) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    let mut checked = 0;
    for path in paths {
        let Ok(Some(bytes)) = read_small(&path) else {
            continue;
        };
        match judge(&bytes) {
            Some(Verdict::Fine) => checked += 1,
            Some(Verdict::LacksNoDa { born_in_tpm }) => {
                checked += 1;
                findings.push(lacks_no_da(&path, born_in_tpm));
            }
            None => {}
        }
    }
    checked
}

/// A path the user named: a key file or a directory of them. Anything else is a failure,
/// since the user expected a key there.
fn check_given(path: &Path, findings: &mut Vec<Finding>) -> usize {
    if path.is_dir() {
        return scan_dir(path, findings);
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            findings.push(Finding::problem(
                Status::Fail,
                CHECK,
                format!("{}: {e}", path.display()),
                "give the path of a TPM key file or a directory of them",
            ));
            return 0;
        }
    };
    match judge(&bytes) {
        Some(Verdict::Fine) => 1,
        Some(Verdict::LacksNoDa { born_in_tpm }) => {
            findings.push(lacks_no_da(path, born_in_tpm));
            1
        }
        // TPM 1.2 keys have no noDA: nothing to say about them.
        None if is_tpm_key_file(&bytes) => 1,
        None => {
            findings.push(Finding::problem(
                Status::Fail,
                CHECK,
                format!(
                    "{} is not a TPM key file (TSS2 PRIVATE KEY or TSS KEY BLOB)",
                    path.display()
                ),
                "give the path of a TPM key file or a directory of them",
            ));
            0
        }
    }
}

/// Findings for the key files in the default places and in `given`: one per key that
/// needs a fix, or one line saying all is well.
pub fn findings(given: &[PathBuf]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let dirs = default_dirs();
    let mut checked: usize = dirs.iter().map(|d| scan_dir(d, &mut findings)).sum();
    for path in given {
        checked += check_given(path, &mut findings);
    }
    if findings.is_empty() {
        let places = dirs
            .iter()
            .map(|d| d.display().to_string())
            .chain(given.iter().map(|p| p.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        findings.push(Finding::ok(
            CHECK,
            format!(
                "{checked} TPM key file(s) in {places}: every one without an auth value has noDA"
            ),
        ));
    }
    findings
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tpmd_api::keyfile::KeyFileKind;
    use tpmd_api::public::{EccCurve, KeyParams};
    use tpmd_api::TpmPublic;

    fn key_file(attributes: u32, empty_auth: bool) -> Vec<u8> {
        let public = TpmPublic::plain(
            attributes,
            KeyParams::Ecc {
                curve: EccCurve::NistP256,
                x: vec![1; 32],
                y: vec![2; 32],
            },
        );
        TpmKeyFile {
            kind: KeyFileKind::Loadable,
            empty_auth,
            parent: 0x8100_0001,
            public: public.to_tpm2b(),
            private: vec![0, 2, 1, 2],
            secret: None,
            policy: Vec::new(),
            auth_policies: Vec::new(),
            description: None,
        }
        .to_pem()
        .into_bytes()
    }

    #[test]
    fn verdicts() {
        use tpmd_api::marshal::{TPMA_OBJECT_SIGN, TPMA_OBJECT_USER_WITH_AUTH};
        let base = TPMA_OBJECT_USER_WITH_AUTH | TPMA_OBJECT_SIGN;
        assert!(matches!(
            judge(&key_file(base, true)),
            Some(Verdict::LacksNoDa { born_in_tpm: false })
        ));
        assert!(matches!(
            judge(&key_file(base | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN, true)),
            Some(Verdict::LacksNoDa { born_in_tpm: true })
        ));
        assert!(matches!(
            judge(&key_file(base | TPMA_OBJECT_NO_DA, true)),
            Some(Verdict::Fine)
        ));
        assert!(matches!(judge(&key_file(base, false)), Some(Verdict::Fine)));
        assert!(judge(b"-----BEGIN OPENSSH PRIVATE KEY-----\n").is_none());
    }
}
