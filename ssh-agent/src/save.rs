//! `--save-wrapped DIR`: a key added with ssh-add and wrapped into the TPM is also written
//! there as `COMMENT.tpm` (0600) with its `COMMENT.pub`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file name from the comment (or the fingerprint), unique in `dir`.
pub fn save(
    dir: &Path,
    comment: &str,
    public: &ssh_key::public::KeyData,
    blob: &[u8],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut stem: String = comment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.trim_matches(['_', '.']).is_empty() {
        stem = public
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
    }
    let mut path = dir.join(format!("{stem}.tpm"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{stem}-{n}.tpm"));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(blob)?;
    let openssh = ssh_key::PublicKey::new(public.clone(), comment)
        .to_openssh()
        .map_err(std::io::Error::other)?;
    std::fs::write(path.with_extension("pub"), format!("{openssh}\n"))?;
    Ok(path)
}
