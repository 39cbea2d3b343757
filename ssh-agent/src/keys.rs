//! The identities the agent serves: TPM key files found in the key directories (re-read
//! when they change, with a certificate beside one served as a second identity), and
//! keys added with ssh-add: wrapped into the TPM, kept in memory, or held by a PKCS#11
//! provider. As in ssh-agent, a key and its certificate are separate identities, added
//! and removed separately.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tracing::{debug, info, warn};

use crate::destination::Rules;
use crate::memory::MemoryKey;
use crate::wire::KeyBlob;

/// Key files are small; anything bigger is not one and is not read.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// What signs for an identity.
#[derive(Debug, Clone)]
pub enum Backing {
    /// A TPM key file's bytes (TSS2 PRIVATE KEY), exactly what tpmd takes.
    Tpm {
        blob: Arc<Vec<u8>>,
        needs_auth: bool,
        /// Bound to signed policies: each signature adds the user's (read once here).
        takes_user_policies: bool,
    },
    /// A key no TPM can hold, in the agent's locked memory.
    Memory(Arc<MemoryKey>),
    /// A key of a PKCS#11 provider, signed for by its helper process.
    Pkcs11 { provider: PathBuf },
}

impl Backing {
    /// The mark `ssh-add -l` shows after the comment.
    fn mark(&self) -> &'static str {
        match self {
            Backing::Tpm { .. } => " [TPM]",
            Backing::Memory(_) => " [in memory, not TPM]",
            Backing::Pkcs11 { .. } => "",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Held {
    /// The identity: a plain key or a certificate of it.
    pub key: KeyBlob,
    pub comment: String,
    pub backing: Backing,
    /// ssh-add -c: ask before each use.
    pub confirm: bool,
    /// ssh-add -t: gone after this instant.
    pub expires: Option<Instant>,
    /// ssh-add -h: where the key may be used.
    pub rules: Arc<Rules>,
}

impl Held {
    pub fn listed_comment(&self) -> String {
        format!("{}{}", self.comment, self.backing.mark())
    }
}

/// What identifies one version of a file on disk (and of its certificate).
type Stamp = (FileStamp, Option<FileStamp>);
pub type FileStamp = (Option<SystemTime>, u64);

struct FileEntry {
    stamp: Stamp,
    /// The key, then its certificate if one is beside it.
    held: Vec<Held>,
}

#[derive(Default)]
pub struct KeyStore {
    dirs: Vec<PathBuf>,
    /// Key files named one by one (`--key-file`).
    named: Vec<PathBuf>,
    files: BTreeMap<PathBuf, FileEntry>,
    added: Vec<Held>,
    /// File identities removed with ssh-add -d/-D: hidden until the file changes.
    hidden: HashSet<(PathBuf, Stamp, Vec<u8>)>,
}

/// The identities of a TPM key file (the key, and a certificate beside it), or none if
/// it is not one.
pub fn read_key_file(path: &Path, bytes: Vec<u8>) -> Vec<Held> {
    if !tpmd_api::client::is_tpm_key_file(&bytes) {
        return Vec::new();
    }
    let public = match tpmd_api::client::key_file_public(&bytes) {
        Ok(public) => public,
        Err(e) => {
            warn!("{}: unreadable TPM key file: {e}", path.display());
            return Vec::new();
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
            return Vec::new();
        }
    };
    let needs_auth = tpmd_api::client::key_needs_auth(&bytes).unwrap_or(false);
    let public = ssh.key_data().clone();
    let backing = Backing::Tpm {
        takes_user_policies: tpmd_api::client::takes_user_policies(&bytes),
        blob: Arc::new(bytes),
        needs_auth,
    };
    let cert = crate::cert::beside(path, &public).map(|c| KeyBlob::from_cert(&c));
    KeyBlob::from_key(&public)
        .into_iter()
        .chain(cert)
        .map(|key| Held {
            key,
            comment: comment.clone(),
            backing: backing.clone(),
            confirm: false,
            expires: None,
            rules: Arc::default(),
        })
        .collect()
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
    pub fn new(dirs: Vec<PathBuf>, named: Vec<PathBuf>) -> KeyStore {
        KeyStore {
            dirs,
            named,
            ..KeyStore::default()
        }
    }

    /// Every candidate key file: the named ones and the files of the key directories.
    fn candidates(&self) -> Vec<PathBuf> {
        let listed = self
            .dirs
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flat_map(|entries| entries.flatten().map(|e| e.path()))
            .filter(|path| path.extension().is_none_or(|e| e != "pub"));
        self.named.iter().cloned().chain(listed).collect()
    }

    /// Re-reads the key directories: new and changed files are parsed, vanished ones
    /// dropped. Unchanged files cost one stat.
    pub fn rescan(&mut self) {
        let mut seen = HashSet::new();
        for path in self.candidates() {
            {
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
                let held = std::fs::read(&path)
                    .map(|bytes| read_key_file(&path, bytes))
                    .unwrap_or_default();
                match held.first() {
                    Some(k) => info!("serving TPM key {} ({})", path.display(), k.comment),
                    None => debug!("{}: not a TPM key file", path.display()),
                }
                self.files.insert(path, FileEntry { stamp, held });
            }
        }
        self.files.retain(|path, _| seen.contains(path));
        let files = &self.files;
        self.hidden
            .retain(|(path, stamp, _)| files.get(path).is_some_and(|f| f.stamp == *stamp));
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

    /// Every identity served, ssh-add'ed ones first, each blob once.
    pub fn keys(&self) -> Vec<&Held> {
        let mut seen = HashSet::new();
        let files = self.files.iter().flat_map(|(path, f)| {
            f.held.iter().filter(move |h| {
                !self
                    .hidden
                    .contains(&(path.clone(), f.stamp, h.key.blob.clone()))
            })
        });
        self.added
            .iter()
            .chain(files)
            .filter(|k| seen.insert(k.key.blob.clone()))
            .collect()
    }

    pub fn find(&self, blob: &[u8]) -> Option<&Held> {
        self.keys().into_iter().find(|k| k.key.blob == blob)
    }

    /// Adds (or replaces, as ssh-agent does) an identity added with ssh-add.
    pub fn add(&mut self, key: Held) {
        self.added.retain(|k| k.key.blob != key.key.blob);
        self.added.push(key);
    }

    /// Removes an identity; a file's is hidden until the file changes. False if not held.
    pub fn remove(&mut self, blob: &[u8]) -> bool {
        let before = self.added.len();
        self.added.retain(|k| k.key.blob != blob);
        let mut found = self.added.len() != before;
        for (path, f) in &self.files {
            if f.held.iter().any(|h| h.key.blob == blob) {
                self.hidden.insert((path.clone(), f.stamp, blob.to_vec()));
                found = true;
            }
        }
        found
    }

    pub fn remove_all(&mut self) {
        self.added.clear();
        for (path, f) in &self.files {
            for h in &f.held {
                self.hidden
                    .insert((path.clone(), f.stamp, h.key.blob.clone()));
            }
        }
    }

    /// Removes the identities of one PKCS#11 provider; how many there were.
    pub fn remove_provider(&mut self, provider: &Path) -> usize {
        let before = self.added.len();
        self.added
            .retain(|k| !matches!(&k.backing, Backing::Pkcs11 { provider: p } if p == provider));
        before - self.added.len()
    }
}
