//! Where the module looks for key files: its own store, `~/.ssh/*.tpm`, and the
//! directories named in `TPMD_PKCS11_KEYS` or the config file.

use std::path::{Path, PathBuf};

/// Colon-separated list of extra key directories.
pub const KEYS_ENV: &str = "TPMD_PKCS11_KEYS";

/// One place keys come from, and how its files are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDir {
    pub path: PathBuf,
    pub kind: DirKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirKind {
    /// `$XDG_DATA_HOME/tpmd/keys`: the module writes here (generated, imported keys,
    /// certificates); labels can be changed.
    Store,
    /// `~/.ssh`: only `*.tpm` files; CKA_ID is the ssh SHA-256 fingerprint.
    Ssh,
    /// A configured directory: every TPM key file in it.
    Extra,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => home().map(|h| h.join(fallback)),
    }
}

/// The module's own key store.
pub fn store_dir() -> Option<PathBuf> {
    xdg("XDG_DATA_HOME", ".local/share").map(|d| d.join("tpmd").join("keys"))
}

/// Where the module remembers which keys take the token PIN (beside the store).
pub fn token_pin_file() -> Option<PathBuf> {
    xdg("XDG_DATA_HOME", ".local/share").map(|d| d.join("tpmd").join("pkcs11-token-pin"))
}

/// The config file: lines `keys = DIR`; `#` starts a comment.
pub fn config_file() -> Option<PathBuf> {
    xdg("XDG_CONFIG_HOME", ".config").map(|d| d.join("tpmd").join("pkcs11.conf"))
}

fn parse_config(text: &str, base: &Path) -> Vec<PathBuf> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == "keys")
        .map(|(_, v)| expand(v.trim(), base))
        .collect()
}

fn expand(path: &str, base: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(h) = home() {
            return h.join(rest);
        }
    }
    base.join(path)
}

/// Every key directory, in the order objects are listed.
pub fn key_dirs() -> Vec<KeyDir> {
    let mut dirs = Vec::new();
    if let Some(path) = store_dir() {
        dirs.push(KeyDir {
            path,
            kind: DirKind::Store,
        });
    }
    if let Some(h) = home() {
        dirs.push(KeyDir {
            path: h.join(".ssh"),
            kind: DirKind::Ssh,
        });
    }
    if let Some(list) = std::env::var_os(KEYS_ENV) {
        for p in std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(KeyDir {
                path: p,
                kind: DirKind::Extra,
            });
        }
    }
    if let Some(file) = config_file() {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
            for p in parse_config(&text, &base) {
                dirs.push(KeyDir {
                    path: p,
                    kind: DirKind::Extra,
                });
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.path.clone()));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines() {
        let dirs = parse_config(
            "# comment\nkeys = /a/b\n  keys=rel # trailing\nother = x\n",
            Path::new("/etc"),
        );
        assert_eq!(dirs, vec![PathBuf::from("/a/b"), PathBuf::from("/etc/rel")]);
    }
}
