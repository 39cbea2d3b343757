//! What the resource manager has done since start, readable through GetInfo/GetCounters.

use tpmd_api::dbus::Counters;

#[derive(Debug, Default, Clone, Copy)]
pub struct RmCounters {
    pub requests: u64,
    pub hits: u64,
    pub loads: u64,
    pub context_loads: u64,
    pub evictions: u64,
    pub retries: u64,
    pub resets_recovered: u64,
    pub failures: u64,
}

impl RmCounters {
    pub fn snapshot(&self, cached_keys: usize, loaded_keys: usize) -> Counters {
        Counters {
            requests: Some(self.requests),
            hits: Some(self.hits),
            loads: Some(self.loads),
            context_loads: Some(self.context_loads),
            evictions: Some(self.evictions),
            retries: Some(self.retries),
            resets_recovered: Some(self.resets_recovered),
            failures: Some(self.failures),
            cached_keys: Some(cached_keys as u64),
            loaded_keys: Some(loaded_keys as u64),
            tpm_commands: None,
            ..Counters::default()
        }
    }
}
