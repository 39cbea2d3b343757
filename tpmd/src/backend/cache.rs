//! The keys a resource manager knows, with least-recently-used bookkeeping: which loaded
//! key to evict when a slot is needed, and which idle keys to forget when the cache is
//! full. Shared by the TPM 2.0 and TPM 1.2 resource managers; what "loaded" means is
//! theirs.

use std::collections::HashMap;
use std::hash::Hash;

struct Slot<V> {
    value: V,
    last_used: u64,
}

pub struct KeyCache<K, V> {
    entries: HashMap<K, Slot<V>>,
    tick: u64,
    max: usize,
}

impl<K: Eq + Hash + Copy, V> KeyCache<K, V> {
    /// A cache that forgets idle keys beyond `max`.
    pub fn new(max: usize) -> Self {
        KeyCache {
            entries: HashMap::new(),
            tick: 0,
            max: max.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: &K) -> bool {
        self.entries.contains_key(id)
    }

    /// The entry, without counting it as a use.
    pub fn get(&self, id: &K) -> Option<&V> {
        self.entries.get(id).map(|s| &s.value)
    }

    /// The entry, without counting it as a use.
    pub fn get_mut(&mut self, id: &K) -> Option<&mut V> {
        self.entries.get_mut(id).map(|s| &mut s.value)
    }

    /// The entry for `id`, made by `make` if absent, marked as just used.
    pub fn use_or_insert_with(&mut self, id: K, make: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.entries.entry(id).or_insert_with(|| Slot {
            value: make(),
            last_used: tick,
        });
        slot.last_used = tick;
        &mut slot.value
    }

    pub fn remove(&mut self, id: &K) -> Option<V> {
        self.entries.remove(id).map(|s| s.value)
    }

    /// The least recently used entry that `eligible` accepts.
    pub fn least_recent(&self, eligible: impl Fn(&K, &V) -> bool) -> Option<K> {
        self.entries
            .iter()
            .filter(|(id, slot)| eligible(id, &slot.value))
            .min_by_key(|(_, slot)| slot.last_used)
            .map(|(id, _)| *id)
    }

    /// How many entries `matches` accepts.
    pub fn count(&self, matches: impl Fn(&V) -> bool) -> usize {
        self.entries.values().filter(|s| matches(&s.value)).count()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.values_mut().map(|s| &mut s.value)
    }

    pub fn ids(&self) -> Vec<K> {
        self.entries.keys().copied().collect()
    }

    /// Keeps the cache bounded: beyond its size, forgets the least recently used
    /// entries that are `idle` (not loaded), down to nine tenths of the size so that
    /// trimming is not needed on every insert.
    pub fn trim(&mut self, idle: impl Fn(&V) -> bool) {
        if self.entries.len() <= self.max {
            return;
        }
        let mut candidates: Vec<(u64, K)> = self
            .entries
            .iter()
            .filter(|(_, s)| idle(&s.value))
            .map(|(id, s)| (s.last_used, *id))
            .collect();
        candidates.sort_unstable_by_key(|(used, _)| *used);
        let excess = self.entries.len() - self.max * 9 / 10;
        for (_, id) in candidates.into_iter().take(excess) {
            self.entries.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_eligible_entry_goes_first() {
        let mut cache: KeyCache<u8, bool> = KeyCache::new(10);
        for id in 0..4 {
            cache.use_or_insert_with(id, || id % 2 == 0);
        }
        cache.use_or_insert_with(0, || false);
        // Loaded (true) entries: 0 and 2; 0 was used last.
        assert_eq!(cache.least_recent(|_, loaded| *loaded), Some(2));
        assert_eq!(
            cache.least_recent(|id, loaded| *loaded && *id != 2),
            Some(0)
        );
        assert_eq!(cache.count(|loaded| *loaded), 2);
    }

    #[test]
    fn trimming_forgets_only_idle_entries() {
        let mut cache: KeyCache<u32, bool> = KeyCache::new(10);
        for id in 0..20 {
            cache.use_or_insert_with(id, || id < 5);
        }
        cache.trim(|loaded| !loaded);
        assert_eq!(cache.len(), 9);
        for id in 0..5 {
            assert!(cache.contains(&id), "loaded entry {id} was dropped");
        }
        assert!(cache.contains(&19) && !cache.contains(&5));
    }
}
