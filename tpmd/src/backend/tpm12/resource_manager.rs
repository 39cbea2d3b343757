//! The TPM 1.2 resource manager: the same policy as the 2.0 one over the 1.2 key slots.
//!
//! Loaded keys are cached by the digest of their blob; at most `budget` are loaded at
//! once and the least recently used is flushed when another needs a slot or the TPM
//! answers TPM_NOSPACE / TPM_RESOURCES. An evicted key comes back with LoadKey2 from its
//! blob (a blob is always enough). TPM_RETRY is retried with backoff. The client keeps
//! one OIAP session for everything; when it finds the TPM lost our state (reconnect,
//! Startup, the session gone) every cached handle is dropped before it can be reused, so
//! a stale handle never names another key.

use std::collections::HashMap;
use std::thread::sleep;
use std::time::Duration;

use tpmd_api::dbus::Counters;
use tpmd_tpm12::client::{ClientError, Tpm12};
use tracing::{debug, info, warn};

use super::key::{Key, KeyId};
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
    last_used: u64,
}

pub struct ResourceManager {
    tpm: Tpm12,
    cache: HashMap<KeyId, Entry>,
    loaded: Vec<KeyId>,
    tick: u64,
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
            cache: HashMap::new(),
            loaded: Vec::new(),
            tick: 0,
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
        self.counters.snapshot(self.cache.len(), self.loaded.len())
    }

    /// Drops every cached handle if the TPM lost our state since we last looked,
    /// keeping `keep` (a handle obtained after the loss).
    fn sync_epoch(&mut self, keep: Option<KeyId>) {
        if self.tpm.epoch() == self.epoch {
            return;
        }
        self.epoch = self.tpm.epoch();
        let stale: Vec<KeyId> = self
            .loaded
            .iter()
            .filter(|id| Some(**id) != keep)
            .copied()
            .collect();
        if !stale.is_empty() {
            info!(
                keys = stale.len(),
                "the TPM lost its loaded keys (reset or reconnect); reloading from the blobs"
            );
            self.counters.resets_recovered += 1;
        }
        for id in stale {
            self.forget(id);
        }
    }

    fn forget(&mut self, id: KeyId) {
        self.loaded.retain(|l| *l != id);
        if let Some(e) = self.cache.get_mut(&id) {
            e.handle = None;
        }
    }

    fn evict_lru(&mut self, keep: KeyId) -> bool {
        let victim = self
            .loaded
            .iter()
            .filter(|id| **id != keep)
            .min_by_key(|id| self.cache.get(*id).map_or(0, |e| e.last_used))
            .copied();
        let Some(victim) = victim else {
            return false;
        };
        let handle = self.cache.get(&victim).and_then(|e| e.handle);
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

    fn trim_cache(&mut self) {
        while self.cache.len() > MAX_CACHED {
            let oldest = self
                .cache
                .iter()
                .filter(|(_, e)| e.handle.is_none())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => {
                    self.cache.remove(&id);
                }
                None => return,
            }
        }
    }

    /// The key's handle, loading it (and making room) if needed.
    fn ensure_loaded(&mut self, key: &Key) -> Result<u32, ClientError> {
        self.sync_epoch(None);
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.cache.get_mut(&key.id) {
            entry.last_used = tick;
            if let Some(handle) = entry.handle {
                self.counters.hits += 1;
                return Ok(handle);
            }
        }
        while self.loaded.len() >= self.budget {
            if !self.evict_lru(key.id) {
                break;
            }
        }
        let mut attempt = 0;
        let handle = loop {
            attempt += 1;
            match self.tpm.load_key(&key.blob) {
                Ok(handle) => break handle,
                Err(e) if e.is_out_of_space() && attempt < ATTEMPTS => {
                    let fewer = self.loaded.len().max(1);
                    if !self.evict_lru(key.id) {
                        return Err(e);
                    }
                    warn!(
                        budget = fewer,
                        "TPM 1.2 key slots full; lowering the slot budget"
                    );
                    self.budget = fewer;
                }
                Err(e) if e.is_retry() && attempt < ATTEMPTS => self.backoff(attempt),
                Err(e) => return Err(e),
            }
        };
        self.counters.loads += 1;
        // The load may itself have found the TPM reset: the other handles are stale.
        self.sync_epoch(Some(key.id));
        self.cache.insert(
            key.id,
            Entry {
                handle: Some(handle),
                last_used: tick,
            },
        );
        self.loaded.push(key.id);
        self.trim_cache();
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
                    if !self.evict_lru(key.id) {
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
                    if !self.evict_lru([0; 32]) {
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
        while self.evict_lru([0; 32]) {}
    }
}

impl Drop for ResourceManager {
    fn drop(&mut self) {
        self.flush_all();
    }
}
