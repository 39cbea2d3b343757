//! How many connections tpmd's socket holds open, per uid and in all, so that one user
//! opening connections without end neither exhausts tpmd's file descriptors nor takes
//! every place from the others. (A refused client still has the bus.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// tpmd's soft limit on file descriptors is usually 1024; this leaves room for the rest.
const MAX_CONNECTIONS: usize = 512;
/// A frontend holds one connection per process; this is a lot of processes.
const MAX_PER_UID: usize = 64;

pub struct ConnectionLimits {
    open: Mutex<HashMap<u32, usize>>,
    max_total: usize,
    max_per_uid: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::new(MAX_CONNECTIONS, MAX_PER_UID)
    }
}

/// One open connection, counted until dropped.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    uid: u32,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_uid: usize) -> ConnectionLimits {
        ConnectionLimits {
            open: Mutex::new(HashMap::new()),
            max_total,
            max_per_uid,
        }
    }

    /// A place for a new connection from `uid`, if both limits allow it.
    pub fn acquire(self: &Arc<Self>, uid: u32) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = open.values().sum();
        let mine = open.get(&uid).copied().unwrap_or(0);
        if total >= self.max_total || mine >= self.max_per_uid {
            return None;
        }
        open.insert(uid, mine + 1);
        Some(Slot {
            limits: self.clone(),
            uid,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "at most {} per uid, {} in all",
            self.max_per_uid, self.max_total
        )
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_uid_and_total_limits() {
        let limits = Arc::new(ConnectionLimits::new(3, 2));
        let a1 = limits.acquire(1000).unwrap();
        let _a2 = limits.acquire(1000).unwrap();
        assert!(limits.acquire(1000).is_none(), "a third for one uid");
        let _b1 = limits.acquire(1001).unwrap();
        assert!(limits.acquire(1002).is_none(), "a fourth in all");
        drop(a1);
        assert!(limits.acquire(1002).is_some(), "a place was freed");
    }
}
