//! Key files are written atomically with mode 0600: a temp file in the same directory,
//! renamed into place, so an interrupted run never leaves half a key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{CliError, CliResult};

pub fn read(path: &Path) -> CliResult<Vec<u8>> {
    fs::read(path).map_err(|e| CliError::io(path, e))
}

/// Writes `contents` to `path` atomically; refuses to replace an existing file unless
/// `overwrite`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32, overwrite: bool) -> CliResult<()> {
    if !overwrite && path.exists() {
        return Err(CliError::file(
            path,
            "already exists; pass --force to overwrite it or -o to write elsewhere",
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tpm-keyctl-")
        .tempfile_in(dir)
        .map_err(|e| CliError::io(dir, e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| CliError::io(path, e))?;
    tmp.write_all(contents)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| CliError::io(path, e))?;
    tmp.persist(path).map_err(|e| CliError::io(path, e.error))?;
    Ok(())
}

/// Reads a secret (passphrase, auth value) from a file, without its final newline.
pub fn read_secret(path: &Path) -> CliResult<zeroize::Zeroizing<Vec<u8>>> {
    let mut bytes = zeroize::Zeroizing::new(read(path)?);
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}
