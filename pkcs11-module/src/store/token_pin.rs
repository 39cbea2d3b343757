//! Which keys take the token PIN. A key with an auth value either shares the PIN the
//! application gives C_Login, or has its own and is used through a context-specific
//! login (CKA_ALWAYS_AUTHENTICATE). Telling them apart by trying would cost a
//! dictionary-attack try per key, so the module remembers what it has seen work: the key
//! C_Login checked the PIN against, keys made while logged in, and keys whose own PIN
//! turned out to equal the token PIN. The list holds SHA-256 digests of key files, never
//! anything about the PIN itself, and a key whose auth value changes gets a new file and so
//! a new digest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::files::write_atomic;
use super::key::to_hex;

/// At most this many digests are kept; the oldest-sorted go first (keys long deleted).
const MAX_ENTRIES: usize = 4096;

const HEADER: &str = "# Key files (SHA-256) whose auth value is the tpmd PKCS#11 token PIN.\n";

#[derive(Debug, Default)]
pub struct TokenPinKeys {
    path: Option<PathBuf>,
    digests: BTreeSet<[u8; 32]>,
    stamp: Option<(SystemTime, u64)>,
}

fn stamp_of(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    ))
}

fn parse(text: &str) -> BTreeSet<[u8; 32]> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let bytes: Option<Vec<u8>> = (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(l.get(i..i + 2)?, 16).ok())
                .collect();
            bytes?.try_into().ok()
        })
        .collect()
}

impl TokenPinKeys {
    /// The list kept in `path` (none: kept in memory only).
    pub fn at(path: Option<PathBuf>) -> TokenPinKeys {
        let mut keys = TokenPinKeys {
            path,
            ..TokenPinKeys::default()
        };
        keys.reload();
        keys
    }

    /// Re-reads the file if another process changed it.
    pub fn reload(&mut self) {
        let Some(path) = &self.path else { return };
        let stamp = stamp_of(path);
        if stamp == self.stamp {
            return;
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            self.digests.extend(parse(&text));
        }
        self.stamp = stamp;
    }

    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.digests.contains(digest)
    }

    /// Remembers that the key with this digest takes the token PIN (and forgets `old`,
    /// the file it replaces, if any).
    pub fn add(&mut self, digest: [u8; 32], old: Option<[u8; 32]>) {
        self.reload();
        let changed_old = old.is_some_and(|o| self.digests.remove(&o));
        if !self.digests.insert(digest) && !changed_old {
            return;
        }
        while self.digests.len() > MAX_ENTRIES {
            let Some(first) = self.digests.iter().next().copied() else {
                break;
            };
            self.digests.remove(&first);
        }
        self.save();
    }

    /// Forgets a key (its file was replaced with another auth value).
    pub fn remove(&mut self, digest: &[u8; 32]) {
        self.reload();
        if self.digests.remove(digest) {
            self.save();
        }
    }

    fn save(&mut self) {
        let Some(path) = &self.path else { return };
        let mut text = HEADER.to_string();
        for d in &self.digests {
            text.push_str(&to_hex(d));
            text.push('\n');
        }
        // Best effort: without the file the module only asks for context logins more
        // often; it never uses a PIN with the wrong key.
        if write_atomic(path, text.as_bytes()).is_ok() {
            self.stamp = stamp_of(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_merges_what_other_processes_learned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list");
        let mut a = TokenPinKeys::at(Some(path.clone()));
        assert!(!a.contains(&[1; 32]));
        a.add([1; 32], None);
        let mut b = TokenPinKeys::at(Some(path.clone()));
        assert!(b.contains(&[1; 32]));
        b.add([2; 32], Some([1; 32]));
        a.reload();
        assert!(a.contains(&[2; 32]));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('#'), "{text}");
        assert!(!text.contains(&to_hex(&[1; 32])), "{text}");
        assert_eq!(parse("zz\n0102\n"), BTreeSet::new());
    }
}
