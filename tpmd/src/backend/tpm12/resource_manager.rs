//! The TPM 1.2 resource manager: the same policy as the 2.0 one over the 1.2 key slots.
//!
//! Loaded keys are cached by the digest of their blob; at most `budget` are loaded at
//! once and the least recently used is flushed when another needs a slot or the TPM
//! answers TPM_NOSPACE / TPM_RESOURCES. An evicted key's context is saved once and
//! brought back with LoadContext (0.4 ms on swtpm against 5 ms for LoadKey2); if the TPM
//! refuses it, the key is loaded from its blob (a blob is always enough). TPM_RETRY is retried with backoff. The client keeps
//! one OIAP session for everything; when it finds the TPM lost our state (reconnect,
//! Startup, the session gone) every cached handle is dropped before it can be reused, so
//! a stale handle never names another key.

use std::thread::sleep;
use std::time::Duration;

use tpmd_api::dbus::Counters;
use tpmd_tpm12::client::{ClientError, Tpm12};
use tracing::{debug, info, warn};

use super::key::{Key, KeyId};
use crate::backend::cache::KeyCache;
use crate::backend::counters::RmCounters;

const ATTEMPTS: u32 = 8;
const MAX_CACHED: usize = 4096;

/// A failed key operation, and whether it failed while loading the key (LoadKey2) or in
/// the operation itself.
pub struct Failure {
    pub during_load: bool,
    pub error: ClientError,
}

impl Failure {
    fn load(error: ClientError) -> Failure {
        Failure {
            during_load: true,
            error,
        }
    }

    fn op(error: ClientError) -> Failure {
        Failure {
            during_load: false,
            error,
        }
    }
}

struct Entry {
    handle: Option<u32>,
    /// SaveContext of the key, taken when it was first evicted; it stays loadable (also
    /// across TPM resets, for a non-volatile key), so it is saved once.
    saved: Option<Vec<u8>>,
}

impl Entry {
    fn is_loaded(&self) -> bool {
        self.handle.is_some()
    }
}

pub struct ResourceManager {
    tpm: Tpm12,
    cache: KeyCache<KeyId, Entry>,
    budget: usize,
    epoch: u64,
    pub(super) counters: RmCounters,
    /// The SRK's modulus once read (ParentPublic).
    pub(super) srk_modulus: Option<Vec<u8>>,
}

impl ResourceManager {
    pub fn new(tpm: Tpm12, budget: usize) -> ResourceManager {
        let epoch = tpm.epoch();
        ResourceManager {
            tpm,
            cache: KeyCache::new(MAX_CACHED),
            budget: budget.max(1),
            epoch,
            counters: RmCounters::default(),
            srk_modulus: None,
        }
    }

    /// The client, for commands that involve no cached key.
    pub fn tpm(&mut self) -> &mut Tpm12 {
        &mut self.tpm
    }

    pub fn counters(&self) -> Counters {
        let mut counters = self
            .counters
            .snapshot(self.cache.len(), self.cache.count(Entry::is_loaded));
        counters.tpm_commands = Some(
            self.tpm
                .command_counter()
                .snapshot()
                .into_iter()
                .map(|(ordinal, n)| (tpmd_tpm12::codec::consts::ord::name(ordinal), n))
                .collect(),
        );
        counters
    }

    /// Drops every cached handle if the TPM lost our state since we last looked,
    /// keeping `keep` (a handle obtained after the loss).
    fn sync_epoch(&mut self, keep: Option<KeyId>) {
        if self.tpm.epoch() == self.epoch {
            return;
        }
        self.epoch = self.tpm.epoch();
        if self.invalidate_others(keep) > 0 {
            info!("the TPM lost its loaded keys (reset or reconnect); reloading them");
            self.counters.resets_recovered += 1;
        }
    }

    /// Forgets every loaded handle but `keep`'s; returns how many.
    fn invalidate_others(&mut self, keep: Option<KeyId>) -> usize {
        let stale: Vec<KeyId> = self
            .cache
            .ids()
            .into_iter()
            .filter(|id| Some(*id) != keep && self.cache.get(id).is_some_and(Entry::is_loaded))
            .collect();
        for id in &stale {
            self.forget(*id);
        }
        stale.len()
    }

    fn forget(&mut self, id: KeyId) {
        if let Some(e) = self.cache.get_mut(&id) {
            e.handle = None;
        }
    }

    /// Evicts the least recently used loaded key but `keep`, saving its context first
    /// when `save` (not at shutdown). False if there was nothing to evict.
    fn evict_lru(&mut self, keep: KeyId, save: bool) -> bool {
        let victim = self
            .cache
            .least_recent(|id, e| e.is_loaded() && *id != keep);
        let Some(victim) = victim else {
            return false;
        };
        let (handle, has_context) = self
            .cache
            .get(&victim)
            .map_or((None, false), |e| (e.handle, e.saved.is_some()));
        if let (Some(handle), true, false) = (handle, save, has_context) {
            match self.tpm.save_key_context(handle) {
                Ok(context) => {
                    if let Some(entry) = self.cache.get_mut(&victim) {
                        entry.saved = Some(context);
                    }
                }
                Err(e) => debug!("SaveContext({handle:#x}): {e}; it will reload from its blob"),
            }
        }
        self.forget(victim);
        if let Some(handle) = handle {
            // A handle that is already gone is as good as flushed.
            if let Err(e) = self.tpm.flush_key(handle) {
                debug!("FlushSpecific({handle:#x}): {e}");
            }
        }
        self.counters.evictions += 1;
        true
    }

    /// Runs a load (LoadKey2 or LoadContext), making room when the TPM is full and
    /// retrying TPM_RETRY.
    fn load_with_room(
        &mut self,
        keep: KeyId,
        mut load: impl FnMut(&mut Tpm12) -> Result<u32, ClientError>,
    ) -> Result<u32, ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match load(&mut self.tpm) {
                Err(e) if e.is_out_of_space() && attempt < ATTEMPTS => {
                    let fewer = self.cache.count(Entry::is_loaded).max(1);
                    if !self.evict_lru(keep, true) {
                        return Err(e);
                    }
                    warn!(
                        budget = fewer,
                        "TPM 1.2 key slots full; lowering the slot budget"
                    );
                    self.budget = fewer;
                }
                Err(e) if e.is_retry() && attempt < ATTEMPTS => self.backoff(attempt),
                other => return other,
            }
        }
    }

    /// The key's handle, loading it (and making room) if needed: from its saved context
    /// if it has one (a tenth of LoadKey2's cost), else from its blob.
    fn ensure_loaded(&mut self, key: &Key) -> Result<u32, ClientError> {
        self.sync_epoch(None);
        let entry = self.cache.use_or_insert_with(key.id, || Entry {
            handle: None,
            saved: None,
        });
        if let Some(handle) = entry.handle {
            self.counters.hits += 1;
            return Ok(handle);
        }
        self.cache.trim(|e| !e.is_loaded());
        while self.cache.count(Entry::is_loaded) >= self.budget {
            if !self.evict_lru(key.id, true) {
                break;
            }
        }
        let saved = self.cache.get(&key.id).and_then(|e| e.saved.clone());
        let from_context = match saved {
            Some(context) => {
                match self.load_with_room(key.id, |tpm| tpm.load_key_context(&context)) {
                    Ok(handle) => Some(handle),
                    Err(e) if e.is_transport() => return Err(e),
                    Err(e) => {
                        debug!("saved key context refused ({e}); loading from the blob");
                        if let Some(entry) = self.cache.get_mut(&key.id) {
                            entry.saved = None;
                        }
                        None
                    }
                }
            }
            None => None,
        };
        let handle = match from_context {
            Some(handle) => {
                self.counters.context_loads += 1;
                handle
            }
            None => {
                let handle = self.load_with_room(key.id, |tpm| tpm.load_key(&key.blob))?;
                self.counters.loads += 1;
                handle
            }
        };
        // The load may itself have found the TPM reset: the other handles are stale.
        self.sync_epoch(Some(key.id));
        // A new handle cannot belong to another live key: if a cached key claims it, the
        // TPM lost our keys behind our back and every other handle is stale.
        let aliased = self
            .cache
            .least_recent(|id, e| *id != key.id && e.handle == Some(handle))
            .is_some();
        if aliased {
            info!("the TPM reused a handle we held: it was reset; reloading the other keys");
            self.counters.resets_recovered += 1;
            self.invalidate_others(Some(key.id));
        }
        let entry = self.cache.use_or_insert_with(key.id, || Entry {
            handle: None,
            saved: None,
        });
        entry.handle = Some(handle);
        Ok(handle)
    }

    fn backoff(&mut self, attempt: u32) {
        self.counters.retries += 1;
        sleep(Duration::from_millis(5u64 << attempt.min(6)));
    }

    /// Runs `op` with `key` loaded, recovering from eviction, TPM resets, lost
    /// connections and TPM_RETRY.
    pub fn with_key<T>(
        &mut self,
        key: &Key,
        mut op: impl FnMut(&mut Tpm12, u32) -> Result<T, ClientError>,
    ) -> Result<T, Failure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let handle = self.ensure_loaded(key).map_err(Failure::load)?;
            let result = op(&mut self.tpm, handle);
            let lost_state = self.tpm.epoch() != self.epoch;
            match result {
                Ok(v) => {
                    // Succeeding with our handle means it was ours; others may be stale.
                    self.sync_epoch(Some(key.id));
                    return Ok(v);
                }
                // Never repeat a wrong password: each try counts towards DA lockout.
                Err(e) if attempt >= ATTEMPTS || e.is_auth_failure() => return Err(Failure::op(e)),
                Err(e) if e.is_retry() => self.backoff(attempt),
                // The client already reconnected once; a TPM that stays unreachable is
                // reported rather than waited for.
                Err(e) if e.is_transport() && attempt >= 2 => return Err(Failure::op(e)),
                Err(e) if e.is_stale_handle() || e.is_transport() || lost_state => {
                    debug!("key handle {handle:#x} is gone ({e}); reloading");
                    if !lost_state {
                        // Flushed behind our back (another TPM user): only this key.
                        self.forget(key.id);
                        self.counters.resets_recovered += 1;
                    }
                    self.sync_epoch(None);
                }
                Err(e) if e.is_out_of_space() => {
                    if !self.evict_lru(key.id, true) {
                        return Err(Failure::op(e));
                    }
                }
                Err(e) => return Err(Failure::op(e)),
            }
        }
    }

    /// Runs `op` (a command with no cached key, e.g. CreateWrapKey), retrying TPM_RETRY
    /// and making room when the TPM is out of resources.
    pub fn retrying<T>(
        &mut self,
        mut op: impl FnMut(&mut Tpm12) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op(&mut self.tpm) {
                Err(e) if attempt < ATTEMPTS && e.is_retry() => self.backoff(attempt),
                Err(e) if attempt < ATTEMPTS && e.is_out_of_space() => {
                    if !self.evict_lru([0; 32], true) {
                        return Err(e);
                    }
                }
                other => {
                    self.sync_epoch(None);
                    return other;
                }
            }
        }
    }

    /// Flushes every key we loaded (at shutdown).
    pub fn flush_all(&mut self) {
        while self.evict_lru([0; 32], false) {}
    }
}

impl Drop for ResourceManager {
    fn drop(&mut self) {
        self.flush_all();
    }
}
