//! A buffer in pages of its own, locked in RAM (never swapped out) and wiped when
//! dropped. mlock works on whole pages, and unlocking a page unlocks it for everything in
//! it, so the buffer uses only pages that lie entirely inside its own allocation: no
//! other data shares them, and dropping one key never unlocks another.
//!
//! The lock goes through the `region` crate's safe wrapper (unsafe code is not allowed
//! in this crate). If the lock is refused (RLIMIT_MEMLOCK), the key is kept anyway, as
//! ssh-agent keeps all its keys, and a warning says so.

use region::LockGuard;
use tracing::warn;
use zeroize::Zeroize;

pub struct LockedBytes {
    /// Owns the pages; only `start..start + len` holds data.
    buffer: Box<[u8]>,
    start: usize,
    len: usize,
    /// Unlocks on drop, after `Drop::drop` has wiped the buffer.
    _guard: Option<LockGuard>,
}

impl LockedBytes {
    /// Copies `data` into fresh locked pages. The caller wipes its own copy.
    pub fn new(data: &[u8]) -> LockedBytes {
        let page = region::page::size();
        let pages = data.len().div_ceil(page).max(1);
        let span = pages * page;
        let mut buffer = vec![0u8; span + page].into_boxed_slice();
        let start = buffer.as_ptr().align_offset(page).min(page);
        let guard = match region::lock(buffer[start..].as_ptr(), span) {
            Ok(guard) => Some(guard),
            Err(e) => {
                warn!("cannot lock a key's memory pages ({e}); it is kept in ordinary memory (raise RLIMIT_MEMLOCK to lock it)");
                None
            }
        };
        buffer[start..start + data.len()].copy_from_slice(data);
        LockedBytes {
            buffer,
            start,
            len: data.len(),
            _guard: guard,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buffer[self.start..self.start + self.len]
    }

    #[cfg(test)]
    fn is_locked(&self) -> bool {
        self._guard.is_some()
    }
}

impl Drop for LockedBytes {
    fn drop(&mut self) {
        self.buffer.zeroize();
    }
}

/// What ssh-agent does too: no core dumps (they would hold the keys) and no ptrace
/// attach by other processes of the same user (PR_SET_DUMPABLE 0).
pub fn harden_process() {
    use nix::sys::resource::{setrlimit, Resource};
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        warn!("cannot disable core dumps: {e}");
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        warn!("cannot make the agent non-dumpable (ptrace protection): {e}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_bytes_in_whole_pages_of_its_own() {
        let data: Vec<u8> = (0..=255).cycle().take(5000).collect();
        let locked = LockedBytes::new(&data);
        assert_eq!(locked.as_slice(), data.as_slice());
        let page = region::page::size();
        assert_eq!(locked.as_slice().as_ptr() as usize % page, 0);
        let owned = locked.buffer.as_ptr_range();
        let used_end = locked.as_slice().as_ptr() as usize + data.len().div_ceil(page) * page;
        assert!(used_end <= owned.end as usize);
        // A small key fits a root or an ordinary user's default RLIMIT_MEMLOCK (8 MiB).
        assert!(LockedBytes::new(b"k").is_locked());
    }
}
