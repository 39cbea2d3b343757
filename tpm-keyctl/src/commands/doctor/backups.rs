//! Keys without an offline backup: a TPM clear, a firmware-TPM reset or a new
//! motherboard destroys every key wrapped for the TPM, and only a backup made with
//! `wrap --backup-to` (KEY.backup beside KEY) brings it back. Keys born in the TPM never
//! existed elsewhere and cannot have one.

use std::path::{Path, PathBuf};

use tpmd_api::backup::BACKUP_PARENT;
use tpmd_api::marshal::TPMA_OBJECT_SENSITIVE_DATA_ORIGIN;
use tpmd_api::TpmKeyFile;

use super::key_files::{default_dirs, read_small};
use super::{Finding, Status};

const CHECK: &str = "backups";

/// Whether `path` holds a wrapped software key (one that could have a backup).
fn wrapped_key(path: &Path) -> bool {
    let Ok(Some(bytes)) = read_small(path) else {
        return false;
    };
    let Ok(file) = TpmKeyFile::parse(&bytes) else {
        return false;
    };
    file.parent != BACKUP_PARENT
        && file
            .public_area()
            .is_ok_and(|p| !p.has_attributes(TPMA_OBJECT_SENSITIVE_DATA_ORIGIN))
}

fn backup_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".backup");
    PathBuf::from(name)
}

/// One finding: the wrapped keys in the default places and `given` that have no backup.
pub fn findings(given: &[PathBuf]) -> Vec<Finding> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in default_dirs().into_iter().chain(given.iter().cloned()) {
        if dir.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                paths.extend(entries.flatten().map(|e| e.path()));
            }
        } else {
            paths.push(dir);
        }
    }
    paths.sort();
    let keys: Vec<&PathBuf> = paths.iter().filter(|p| wrapped_key(p)).collect();
    let without: Vec<String> = keys
        .iter()
        .filter(|p| !backup_of(p).exists())
        .map(|p| p.display().to_string())
        .collect();
    if without.is_empty() {
        return vec![Finding::ok(
            CHECK,
            format!(
                "{} wrapped key(s), each with an offline backup beside it",
                keys.len()
            ),
        )];
    }
    vec![Finding::problem(
        Status::Warn,
        CHECK,
        format!(
            "{} wrapped key(s) have no backup, and are lost if this TPM is cleared or replaced: {}",
            without.len(),
            without.join(", ")
        ),
        "wrap the original again with `tpm-keyctl wrap -f --backup-to BACKUP.pub ORIGINAL` (BACKUP.pub: the public half of a backup key kept off this machine), or accept the loss",
    )]
}
