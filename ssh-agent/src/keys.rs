//! The keys the agent serves: TPM key files found in the key directories (re-read when
//! they change) and keys added with ssh-add (wrapped on the spot). Only wrapped blobs
//! are held; they are useless without this machine's TPM.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ssh_key::public::KeyData;
use tracing::{debug, info, warn};

/// Key files are small; anything bigger is not one and is not read.
const MAX_KEY_FILE: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct TpmKey {
    pub public: KeyData,
    /// The certificate blob from `KEY-cert.pub`, offered as a second identity.
    pub cert: Option<Vec<u8>>,
    pub comment: String,
    /// The key file bytes (TSS2 PRIVATE KEY), exactly what tpmd takes.
    pub blob: Arc<Vec<u8>>,
    pub needs_auth: bool,
    /// ssh-add -c: ask before each use.
    pub confirm: bool,
    /// ssh-add -t: gone after this instant.
    pub expires: Option<Instant>,
}

/// What identifies one version of a file on disk (and of its certificate).
type Stamp = (FileStamp, Option<FileStamp>);
pub type FileStamp = (Option<SystemTime>, u64);

struct FileEntry {
    stamp: Stamp,
    key: Option<TpmKey>,
}

#[derive(Default)]
pub struct KeyStore {
    dirs: Vec<PathBuf>,
    files: BTreeMap<PathBuf, FileEntry>,
    added: Vec<TpmKey>,
    /// File keys removed with ssh-add -d/-D: hidden until the file changes.
    hidden: HashSet<(PathBuf, Stamp)>,
}

/// The public key and comment of a TPM key file, or None if it is not one.
pub fn read_key_file(path: &Path, bytes: Vec<u8>) -> Option<TpmKey> {
    if !tpmd_api::client::is_tpm_key_file(&bytes) {
        return None;
    }
    let public = match tpmd_api::client::key_file_public(&bytes) {
        Ok(public) => public,
        Err(e) => {
            warn!("{}: unreadable TPM key file: {e}", path.display());
            return None;
        }
    };
    let comment = pub_comment(path).unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let ssh = match public.to_ssh_public_key(&comment) {
        Ok(ssh) => ssh,
        Err(e) => {
            warn!(
                "{}: this TPM key type cannot be used with ssh: {e}",
                path.display()
            );
            return None;
        }
    };
    let needs_auth = tpmd_api::client::key_needs_auth(&bytes).unwrap_or(false);
    let public = ssh.key_data().clone();
    Some(TpmKey {
        cert: crate::cert::beside(path, &public),
        public,
        comment,
        blob: Arc::new(bytes),
        needs_auth,
        confirm: false,
        expires: None,
    })
}

/// The comment of `KEY.pub` (or `KEY` with `.tpm` replaced by `.pub`) beside a key.
fn pub_comment(path: &Path) -> Option<String> {
    let mut candidates = vec![PathBuf::from(format!("{}.pub", path.display()))];
    if path.extension().is_some_and(|e| e == "tpm") {
        candidates.push(path.with_extension("pub"));
    }
    candidates.iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        let public = ssh_key::PublicKey::from_openssh(text.trim()).ok()?;
        Some(public.comment().to_string()).filter(|c| !c.is_empty())
    })
}

pub fn stamp(meta: &std::fs::Metadata) -> FileStamp {
    (meta.modified().ok(), meta.len())
}

impl KeyStore {
    pub fn new(dirs: Vec<PathBuf>) -> KeyStore {
        KeyStore {
            dirs,
            ..KeyStore::default()
        }
    }

    /// Re-reads the key directories: new and changed files are parsed, vanished ones
    /// dropped. Unchanged files cost one stat.
    pub fn rescan(&mut self) {
        let mut seen = HashSet::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "pub") {
                    continue;
                }
                // A certificate changing makes its key file be read again.
                let cert_stamp = crate::cert::stamp_beside(&path);
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() || meta.len() > MAX_KEY_FILE {
                    continue;
                }
                let stamp = (stamp(&meta), cert_stamp);
                seen.insert(path.clone());
                if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
                    continue;
                }
                let key = std::fs::read(&path)
                    .ok()
                    .and_then(|bytes| read_key_file(&path, bytes));
                match &key {
                    Some(k) => info!("serving TPM key {} ({})", path.display(), k.comment),
                    None => debug!("{}: not a TPM key file", path.display()),
                }
                self.files.insert(path, FileEntry { stamp, key });
            }
        }
        self.files.retain(|path, _| seen.contains(path));
        let files = &self.files;
        self.hidden
            .retain(|(path, stamp)| files.get(path).is_some_and(|f| f.stamp == *stamp));
    }

    pub fn purge_expired(&mut self) {
        let now = Instant::now();
        self.added.retain(|k| {
            let keep = k.expires.is_none_or(|t| t > now);
            if !keep {
                info!("key \"{}\" reached its lifetime and was removed", k.comment);
            }
            keep
        });
    }

    /// Every key served, ssh-add'ed ones first, each public key once.
    pub fn keys(&self) -> Vec<&TpmKey> {
        let mut seen = HashSet::new();
        let files = self
            .files
            .iter()
            .filter(|(path, f)| !self.hidden.contains(&((*path).clone(), f.stamp)))
            .filter_map(|(_, f)| f.key.as_ref());
        self.added
            .iter()
            .chain(files)
            .filter(|k| seen.insert(k.public.clone()))
            .collect()
    }

    pub fn find(&self, public: &KeyData) -> Option<&TpmKey> {
        self.keys().into_iter().find(|k| &k.public == public)
    }

    /// Adds (or replaces, as ssh-agent does) a key added with ssh-add.
    pub fn add(&mut self, key: TpmKey) {
        self.added.retain(|k| k.public != key.public);
        self.added.push(key);
    }

    /// Removes a key; a file key is hidden until its file changes. False if not held.
    pub fn remove(&mut self, public: &KeyData) -> bool {
        let before = self.added.len();
        self.added.retain(|k| &k.public != public);
        let mut found = self.added.len() != before;
        for (path, f) in &self.files {
            if f.key.as_ref().is_some_and(|k| &k.public == public) {
                self.hidden.insert((path.clone(), f.stamp));
                found = true;
            }
        }
        found
    }

    pub fn remove_all(&mut self) {
        self.added.clear();
        for (path, f) in &self.files {
            if f.key.is_some() {
                self.hidden.insert((path.clone(), f.stamp));
            }
        }
    }
}
