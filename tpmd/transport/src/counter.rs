//! Counting commands by code, shared between the connections of one owner.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Commands sent, by command code. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct CommandCounter {
    counts: Arc<Mutex<BTreeMap<u32, u64>>>,
}

/// The command code (TPM 2.0) or ordinal (TPM 1.2) of a command, from its header.
pub fn command_code(command: &[u8]) -> Option<u32> {
    let code = command.get(6..10)?;
    Some(u32::from_be_bytes([code[0], code[1], code[2], code[3]]))
}

impl CommandCounter {
    pub fn count(&self, command: &[u8]) {
        let Some(code) = command_code(command) else {
            return;
        };
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(code).or_insert(0) += 1;
        }
    }

    /// How many commands with this code were sent.
    pub fn get(&self, code: u32) -> u64 {
        self.counts
            .lock()
            .map(|c| c.get(&code).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Every code sent so far and how often.
    pub fn snapshot(&self) -> BTreeMap<u32, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// All commands sent so far.
    pub fn total(&self) -> u64 {
        self.counts.lock().map(|c| c.values().sum()).unwrap_or(0)
    }
}
