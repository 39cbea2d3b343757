//! The TPM's few object slots: making room by evicting the least recently used key,
//! and keeping the cache of key blobs bounded.

use super::*;

impl ResourceManager {
    /// Runs a command that needs a free object slot (a load, or a Create that builds
    /// the object inside the TPM), evicting as needed.
    pub(super) fn with_free_slot<T>(
        &mut self,
        pinned: &[KeyId],
        command: &'static str,
        mut f: impl FnMut(&mut Context) -> tss_esapi::Result<T>,
    ) -> TpmResult<T> {
        loop {
            while self.loaded.len() >= self.budget {
                self.evict_lru(pinned)?;
            }
            match self.retrying(command, &mut f) {
                Err(e) if e.response_code().is_some_and(|rc| rc.is_object_memory()) => {
                    // Fewer slots than we thought (another user, a smaller TPM).
                    if self.evictable(pinned).is_none() {
                        return Err(e);
                    }
                    let fewer = self.loaded.len().max(1);
                    warn!(
                        budget = fewer,
                        "TPM object memory full; lowering the slot budget"
                    );
                    self.budget = fewer;
                    self.evict_lru(pinned)?;
                }
                other => return other,
            }
        }
    }

    pub(super) fn evictable(&self, pinned: &[KeyId]) -> Option<KeyId> {
        self.loaded
            .iter()
            .filter(|id| !pinned.contains(id))
            .min_by_key(|id| self.cache.get(*id).map_or(0, |e| e.last_used))
            .copied()
    }

    pub(super) fn evict_lru(&mut self, pinned: &[KeyId]) -> TpmResult<()> {
        let victim = self.evictable(pinned).ok_or_else(|| {
            TpmError::Unsupported("the TPM has no free object slot for this operation".into())
        })?;
        self.evict(victim)
    }

    pub(super) fn evict(&mut self, id: KeyId) -> TpmResult<()> {
        self.loaded.retain(|l| *l != id);
        let Some(entry) = self.cache.get_mut(&id) else {
            return Ok(());
        };
        let Some(handle) = entry.handle.take() else {
            return Ok(());
        };
        let needs_save = entry.saved.is_none();
        let ctx = self.context()?;
        let saved = if needs_save {
            ctx.context_save(handle.into()).ok()
        } else {
            None
        };
        if ctx.flush_context(handle.into()).is_err() {
            let mut object = ObjectHandle::from(handle);
            let _ = ctx.tr_close(&mut object);
        }
        if let (Some(saved), Some(entry)) = (saved, self.cache.get_mut(&id)) {
            entry.saved = Some(saved);
        }
        self.counters.evictions += 1;
        Ok(())
    }

    /// Keeps the cache bounded: drops the least recently used keys that are not loaded.
    pub(super) fn trim_cache(&mut self) {
        if self.cache.len() <= self.max_cached {
            return;
        }
        let mut idle: Vec<(u64, KeyId)> = self
            .cache
            .iter()
            .filter(|(_, e)| e.handle.is_none())
            .map(|(id, e)| (e.last_used, *id))
            .collect();
        idle.sort_unstable();
        let excess = self.cache.len() - self.max_cached * 9 / 10;
        for (_, id) in idle.into_iter().take(excess) {
            self.cache.remove(&id);
        }
    }
}
