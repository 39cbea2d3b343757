//! The token's objects: every TPM key file in the key directories gives a private-key
//! and a public-key object, and a certificate beside it a certificate object, all with
//! the key's CKA_ID. Re-read when the directories change, so a key wrapped by
//! `tpm-keyctl wrap` shows up without further steps.

pub mod attrs;
pub mod cert;
pub mod files;
pub mod key;
pub mod token_pin;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use cryptoki_sys::CK_OBJECT_HANDLE;

use crate::config::{DirKind, KeyDir};
use crate::token::Family;
use cert::CertEntry;
use key::{companion, KeyEntry};
use token_pin::TokenPinKeys;

/// Which of a key's objects a handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Private,
    Public,
    Certificate,
}

/// What is at one index of the store.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A key, with the certificate stored beside it if any.
    Key(Arc<KeyEntry>, Option<Arc<CertEntry>>),
    /// A certificate with no key file next to it.
    Cert(Arc<CertEntry>),
}

/// One object: an entry and which of its objects, as this token sees it.
#[derive(Debug, Clone)]
pub struct Object {
    pub entry: Entry,
    pub kind: ObjectKind,
    /// The TPM family, which decides what the key can do.
    pub family: Family,
    /// For a key with an auth value: whether it is the token PIN (else the key has its
    /// own, CKA_ALWAYS_AUTHENTICATE).
    pub shares_token_pin: bool,
}

impl Object {
    pub fn key(&self) -> Option<&Arc<KeyEntry>> {
        match &self.entry {
            Entry::Key(k, _) if self.kind != ObjectKind::Certificate => Some(k),
            _ => None,
        }
    }

    pub fn cert(&self) -> Option<&Arc<CertEntry>> {
        match (&self.entry, self.kind) {
            (Entry::Key(_, Some(c)), ObjectKind::Certificate) | (Entry::Cert(c), _) => Some(c),
            _ => None,
        }
    }

    /// The file that holds the object (the key file for key objects).
    pub fn path(&self) -> &Path {
        match (&self.entry, self.cert()) {
            (_, Some(c)) => &c.path,
            (Entry::Key(k, _), None) => &k.path,
            (Entry::Cert(c), None) => &c.path,
        }
    }
}

/// mtime and size of a file and its companions: when unchanged, nothing is re-read.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp_of(paths: &[PathBuf]) -> Stamp {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        })
        .collect()
}

struct Slot {
    entry: Entry,
    stamp: Stamp,
}

/// The objects and their handles. Handles stay the same for a file as long as the
/// module is loaded.
#[derive(Default)]
pub struct Store {
    slots: Vec<Option<Slot>>,
    index: HashMap<PathBuf, usize>,
    pub family: Family,
    pub token_pin: TokenPinKeys,
}

const KIND_BITS: u32 = 2;

fn handle_of(index: usize, kind: ObjectKind) -> CK_OBJECT_HANDLE {
    let k = match kind {
        ObjectKind::Private => 1,
        ObjectKind::Public => 2,
        ObjectKind::Certificate => 3,
    };
    ((index as CK_OBJECT_HANDLE) << KIND_BITS) | k
}

fn is_companion(name: &str) -> bool {
    [".pub", ".crt", ".id"].iter().any(|s| name.ends_with(s)) || name.starts_with('.')
}

/// Key files and standalone certificates in one directory.
fn list_dir(dir: &KeyDir) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut keys = Vec::new();
    let mut certs = Vec::new();
    let Ok(read) = std::fs::read_dir(&dir.path) else {
        return (keys, certs);
    };
    for item in read.flatten() {
        let path = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if name.ends_with(".crt") {
            certs.push(path);
        } else if dir.kind == DirKind::Ssh {
            if name.ends_with(".tpm") {
                keys.push(path);
            }
        } else if !is_companion(&name) {
            keys.push(path);
        }
    }
    keys.sort();
    certs.sort();
    (keys, certs)
}

impl Store {
    /// An empty store that keeps its list of token-PIN keys in `token_pin_file`.
    pub fn new(token_pin_file: Option<PathBuf>) -> Store {
        Store {
            token_pin: TokenPinKeys::at(token_pin_file),
            ..Store::default()
        }
    }

    /// Re-reads the key directories: new files get new handles, changed files are
    /// re-read, removed files' handles become invalid.
    pub fn refresh(&mut self, dirs: &[KeyDir]) {
        self.token_pin.reload();
        let mut seen: HashMap<PathBuf, ()> = HashMap::new();
        let mut attached: Vec<PathBuf> = Vec::new();
        let mut standalone: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            let (keys, certs) = list_dir(dir);
            for path in keys {
                let crt = companion(&path, ".crt");
                let stamp = stamp_of(&[
                    path.clone(),
                    crt.clone(),
                    companion(&path, ".pub"),
                    companion(&path, ".id"),
                ]);
                if self.unchanged(&path, &stamp) {
                    seen.insert(path.clone(), ());
                    attached.push(crt);
                    continue;
                }
                let Some(key) = KeyEntry::read(&path, dir.kind) else {
                    continue;
                };
                let cert = CertEntry::read(&crt).map(|mut c| {
                    c.label = key.label.clone();
                    c.id = key.id.clone();
                    Arc::new(c)
                });
                attached.push(crt);
                seen.insert(path.clone(), ());
                self.put(path, Entry::Key(Arc::new(key), cert), stamp);
            }
            standalone.extend(certs);
        }
        for path in standalone {
            if attached.contains(&path) {
                continue;
            }
            let stamp = stamp_of(std::slice::from_ref(&path));
            seen.insert(path.clone(), ());
            if self.unchanged(&path, &stamp) {
                continue;
            }
            let Some(mut cert) = CertEntry::read(&path) else {
                continue;
            };
            cert.label = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(k) = self.key_with_spki(&cert.spki) {
                cert.id = k.id.clone();
            }
            self.put(path, Entry::Cert(Arc::new(cert)), stamp);
        }
        let gone: Vec<PathBuf> = self
            .index
            .keys()
            .filter(|p| !seen.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(i) = self.index.get(&path) {
                if let Some(slot) = self.slots.get_mut(*i) {
                    *slot = None;
                }
            }
        }
    }

    fn unchanged(&self, path: &Path, stamp: &Stamp) -> bool {
        self.index
            .get(path)
            .and_then(|i| self.slots.get(*i))
            .and_then(|s| s.as_ref())
            .is_some_and(|s| &s.stamp == stamp)
    }

    fn key_with_spki(&self, spki: &[u8]) -> Option<Arc<KeyEntry>> {
        self.slots.iter().flatten().find_map(|s| match &s.entry {
            Entry::Key(k, _) if k.spki == spki => Some(k.clone()),
            _ => None,
        })
    }

    /// Adds or replaces the entry of `path`; returns its index.
    fn put(&mut self, path: PathBuf, entry: Entry, stamp: Stamp) -> usize {
        let slot = Some(Slot { entry, stamp });
        match self.index.get(&path) {
            Some(i) => {
                self.slots[*i] = slot;
                *i
            }
            None => {
                // Index 0 is never used, so no handle is CK_INVALID_HANDLE.
                if self.slots.is_empty() {
                    self.slots.push(None);
                }
                self.slots.push(slot);
                let i = self.slots.len() - 1;
                self.index.insert(path, i);
                i
            }
        }
    }

    /// Reads one file now (after the module wrote it) and returns its handles.
    pub fn add_file(&mut self, dirs: &[KeyDir], path: &Path) -> Option<usize> {
        self.refresh(dirs);
        self.index.get(path).copied()
    }

    pub fn handle(index: usize, kind: ObjectKind) -> CK_OBJECT_HANDLE {
        handle_of(index, kind)
    }

    pub fn object(&self, handle: CK_OBJECT_HANDLE) -> Option<Object> {
        let index = usize::try_from(handle >> KIND_BITS).ok()?;
        let kind = match handle & 3 {
            1 => ObjectKind::Private,
            2 => ObjectKind::Public,
            3 => ObjectKind::Certificate,
            _ => return None,
        };
        let slot = self.slots.get(index)?.as_ref()?;
        let ok = match (&slot.entry, kind) {
            (Entry::Key(_, _), ObjectKind::Private | ObjectKind::Public) => true,
            (Entry::Key(_, cert), ObjectKind::Certificate) => cert.is_some(),
            (Entry::Cert(_), ObjectKind::Certificate) => true,
            (Entry::Cert(_), _) => false,
        };
        ok.then(|| self.view(slot.entry.clone(), kind))
    }

    fn view(&self, entry: Entry, kind: ObjectKind) -> Object {
        let shares_token_pin = match &entry {
            Entry::Key(k, _) => self.shares_token_pin(k),
            Entry::Cert(_) => false,
        };
        Object {
            entry,
            kind,
            family: self.family,
            shares_token_pin,
        }
    }

    /// Whether the key's auth value is the token PIN (as far as the module knows).
    pub fn shares_token_pin(&self, key: &KeyEntry) -> bool {
        !key.empty_auth && self.token_pin.contains(&key.digest)
    }

    /// Every object, in a stable order.
    pub fn all(&self) -> Vec<(CK_OBJECT_HANDLE, Object)> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            let kinds: &[ObjectKind] = match &slot.entry {
                Entry::Key(_, Some(_)) => &[
                    ObjectKind::Private,
                    ObjectKind::Public,
                    ObjectKind::Certificate,
                ],
                Entry::Key(_, None) => &[ObjectKind::Private, ObjectKind::Public],
                Entry::Cert(_) => &[ObjectKind::Certificate],
            };
            for kind in kinds {
                out.push((handle_of(i, *kind), self.view(slot.entry.clone(), *kind)));
            }
        }
        out
    }

    /// Forgets a path (after the module deleted its file).
    pub fn forget(&mut self, path: &Path) {
        if let Some(i) = self.index.remove(path) {
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = None;
            }
        }
    }

    /// Moves an entry's handles to a new path (after a rename).
    pub fn rename(&mut self, from: &Path, to: &Path) {
        if let Some(i) = self.index.remove(from) {
            if let Some(Some(slot)) = self.slots.get_mut(i) {
                slot.stamp.clear();
            }
            self.index.insert(to.to_path_buf(), i);
        }
    }

    /// The key to check a token PIN against: one known to take it, else the first key
    /// with an auth value (which then defines the token PIN).
    pub fn token_pin_probe(&self) -> Option<Arc<KeyEntry>> {
        let candidates = || {
            self.slots.iter().flatten().filter_map(|s| match &s.entry {
                Entry::Key(k, _) if !k.empty_auth && k.can_sign => Some(k.clone()),
                _ => None,
            })
        };
        candidates()
            .find(|k| self.shares_token_pin(k))
            .or_else(|| candidates().next())
    }

    /// The keys known to take the token PIN, once each (a key file may be in two places).
    pub fn token_pin_keys(&self) -> Vec<Arc<KeyEntry>> {
        let mut seen = std::collections::HashSet::new();
        self.slots
            .iter()
            .flatten()
            .filter_map(|s| match &s.entry {
                Entry::Key(k, _) if self.shares_token_pin(k) && seen.insert(k.digest) => {
                    Some(k.clone())
                }
                _ => None,
            })
            .collect()
    }

    pub fn any_key_with_auth(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|s| matches!(&s.entry, Entry::Key(k, _) if !k.empty_auth))
    }
}
