//! Room for keys. Owned strategy: the TPM's few object slots, a budget recomputed from
//! what the TPM reports, and eviction of the least recently used key with its context
//! saved. Kernel RM strategy: a bounded number of connections and sessions.

use tpmd_tpm2::wire::handle;
use tpmd_tpm2::wire::ops::{self, CapabilityData};
use tracing::{debug, info, warn};

use super::*;

impl ResourceManager {
    /// Owned: evicts until there is room for one more key under the budget.
    pub(super) fn make_room(&mut self, pinned: &[KeyId]) -> TpmResult<()> {
        while self.cache.count(Entry::is_loaded) >= self.budget {
            if !self.evict_lru(pinned) {
                break;
            }
        }
        Ok(())
    }

    /// Runs a command that needs a free object slot (a load, or a Create that builds
    /// the object inside the TPM), evicting when the TPM reports its memory full.
    pub(super) fn with_free_slot<T>(
        &mut self,
        pinned: &[KeyId],
        mut op: impl FnMut(&mut Self) -> TpmResult<T>,
    ) -> TpmResult<T> {
        loop {
            match op(self) {
                Err(e) if e.response_code().is_some_and(|rc| rc.is_object_memory()) => {
                    // Someone else holds slots for now, or the TPM has fewer than it
                    // said: make room, and size the budget again from what it reports.
                    if !self.evict_lru(pinned) {
                        return Err(e);
                    }
                    self.recompute_budget();
                }
                other => return other,
            }
        }
    }

    /// Evicts the least recently used loaded key that is not pinned; false if none.
    pub(super) fn evict_lru(&mut self, pinned: &[KeyId]) -> bool {
        let victim = self
            .cache
            .least_recent(|id, e| e.is_loaded() && !pinned.contains(id));
        match victim {
            Some(id) => {
                self.evict(id, true);
                true
            }
            None => false,
        }
    }

    /// Unloads `id`. Owned: its context is saved first (once) when `save`, so that it
    /// comes back with a ContextLoad. Kernel RM: its connection is closed, which flushes
    /// everything it held.
    pub(super) fn evict(&mut self, id: KeyId, save: bool) {
        let Some(entry) = self.cache.get_mut(&id) else {
            return;
        };
        let residence = std::mem::replace(&mut entry.residence, Residence::Unloaded);
        let needs_save = save && entry.saved.is_none();
        match residence {
            Residence::Unloaded => return,
            Residence::Own(link, _) => drop(link),
            Residence::Main(handle) => {
                if needs_save {
                    match self
                        .execute(&ops::context_save(handle), &Authorization::None)
                        .and_then(|r| parse(ops::parse_context_save(&r)))
                    {
                        Ok(context) => {
                            if let Some(entry) = self.cache.get_mut(&id) {
                                entry.saved = Some(context);
                            }
                        }
                        Err(e) => {
                            debug!(error = %e, "ContextSave({handle:#x}); it will load from its key file")
                        }
                    }
                }
                self.flush_on_main(handle);
            }
        }
        self.counters.evictions += 1;
    }

    /// Kernel RM: closes the least recently used key connection when at the limit.
    pub(super) fn make_room_for_link(&mut self, keep: KeyId) {
        let Strategy::KernelRm { max_links, .. } = self.strategy else {
            return;
        };
        while self.cache.count(Entry::is_loaded) >= max_links {
            if !self.evict_lru(&[keep]) {
                break;
            }
        }
    }

    /// Kernel RM: before `id`'s connection starts a session, closes the least recently
    /// used connection holding one if the machine-wide budget of sessions is used up.
    pub(super) fn make_room_for_session(&mut self, id: KeyId) {
        let Strategy::KernelRm { max_sessions, .. } = self.strategy else {
            return;
        };
        let has_own = self.cache.get(&id).is_some_and(Entry::has_own_session);
        if has_own {
            return;
        }
        while self.cache.count(Entry::has_own_session) >= max_sessions {
            let victim = self
                .cache
                .least_recent(|other, e| *other != id && e.has_own_session());
            match victim {
                Some(victim) => self.evict(victim, false),
                None => break,
            }
        }
    }

    /// Owned: the number of keys that may be loaded at once, from the TPM's free
    /// transient slots now, minus the reserve and minus one the TPM needs whenever a
    /// command names a persistent key (the SRK as a parent or as a session's salt key is
    /// loaded into a transient slot for the command), within the configured maximum.
    pub(super) fn recompute_budget(&mut self) {
        let Strategy::Owned {
            reserve,
            max_loaded,
        } = self.strategy
        else {
            return;
        };
        let available = match self.property(ops::pt::HR_TRANSIENT_AVAIL) {
            Ok(Some(n)) => n as usize,
            Ok(None) | Err(_) => {
                debug!("the TPM does not report free transient slots; keeping the budget");
                return;
            }
        };
        let ours = self.cache.count(Entry::is_loaded);
        let mut budget = (ours + available).saturating_sub(reserve + 1);
        if let Some(max) = max_loaded {
            budget = budget.min(max);
        }
        if budget == 0 {
            warn!(
                available,
                reserve, "the TPM has no slot to spare beyond the reserve; keeping one key loaded"
            );
            budget = 1;
        }
        if budget != self.budget {
            info!(budget, available, reserve, "key slot budget");
        }
        self.budget = budget;
    }

    /// Owned: flushes transient objects left in the TPM by an earlier holder of the
    /// device (a tpmd that crashed), so their slots are free.
    pub(super) fn flush_leftovers(&mut self) -> TpmResult<()> {
        let response = self.execute(
            &ops::get_capability(ops::CAP_HANDLES, handle::TRANSIENT_FIRST, 64),
            &Authorization::None,
        )?;
        let CapabilityData::Handles(handles) = parse(ops::parse_capability(&response))?.1 else {
            return Ok(());
        };
        if !handles.is_empty() {
            info!(
                count = handles.len(),
                "flushing transient objects left in the TPM by an earlier holder"
            );
        }
        for handle in handles {
            self.flush_on_main(handle);
        }
        Ok(())
    }

    /// A TPM property, if the TPM reports it.
    pub(super) fn property(&mut self, property: u32) -> TpmResult<Option<u32>> {
        let response = self.execute(
            &ops::get_capability(ops::CAP_TPM_PROPERTIES, property, 1),
            &Authorization::None,
        )?;
        Ok(match parse(ops::parse_capability(&response))?.1 {
            CapabilityData::Properties(list) => list
                .into_iter()
                .find(|(tag, _)| *tag == property)
                .map(|(_, value)| value),
            _ => None,
        })
    }
}
