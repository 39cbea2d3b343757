//! The module's global state between C_Initialize and C_Finalize, and fork detection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use cryptoki_sys::CK_SESSION_HANDLE;
use zeroize::Zeroizing;

use crate::config::{key_dirs, token_pin_file, KeyDir};
use crate::daemon::Daemon;
use crate::error::{Pkcs11Error, Result};
use crate::session::Session;
use crate::store::Store;
use crate::token::TokenIdentity;

/// A session and whether it is read/write.
pub type SessionEntry = (bool, Arc<Mutex<Session>>);

pub struct Module {
    /// The process that called C_Initialize: a forked child sees another pid and must
    /// initialize again, with its own connection.
    pid: u32,
    pub daemon: Daemon,
    pub dirs: Vec<KeyDir>,
    pub store: Mutex<Store>,
    /// Each session with its read/write flag (kept outside its lock, for C_GetTokenInfo).
    pub sessions: Mutex<HashMap<CK_SESSION_HANDLE, SessionEntry>>,
    next_session: AtomicU64,
    /// The user PIN while logged in (login state is per application, not per session).
    /// Only a verified PIN is ever stored here: other threads use it at once.
    pub pin: Mutex<Option<Zeroizing<Vec<u8>>>>,
    /// Held through a C_Login's check of its PIN, so that concurrent logins are checked
    /// one at a time and the second sees the first's outcome.
    pub login_gate: Mutex<()>,
    pub identity: Mutex<Option<TokenIdentity>>,
}

static MODULE: RwLock<Option<Arc<Module>>> = RwLock::new(None);

/// Locks a mutex, ignoring poisoning: a panic in one call (caught at the C boundary)
/// must not make every later call fail.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The initialized module of this process.
pub fn get() -> Result<Arc<Module>> {
    let guard = MODULE.read().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(m) if m.pid == std::process::id() => Ok(m.clone()),
        _ => Err(Pkcs11Error::NotInitialized),
    }
}

/// `threaded`: whether the module may start threads (see [`Daemon`]).
pub fn initialize(threaded: bool) -> Result<()> {
    let mut guard = MODULE.write().unwrap_or_else(|p| p.into_inner());
    if let Some(old) = guard.take() {
        if old.pid == std::process::id() {
            *guard = Some(old);
            return Err(Pkcs11Error::AlreadyInitialized);
        }
        // Inherited from the parent across fork: its runtime thread does not exist
        // here and its locks may be held forever, so it is never touched again.
        std::mem::forget(old);
    }
    let daemon = Daemon::new(threaded).map_err(|e| Pkcs11Error::General(e.to_string()))?;
    *guard = Some(Arc::new(Module {
        pid: std::process::id(),
        daemon,
        dirs: key_dirs(),
        store: Mutex::new(Store::new(token_pin_file())),
        sessions: Mutex::new(HashMap::new()),
        next_session: AtomicU64::new(1),
        pin: Mutex::new(None),
        login_gate: Mutex::new(()),
        identity: Mutex::new(None),
    }));
    Ok(())
}

pub fn finalize() -> Result<()> {
    let module = {
        let mut guard = MODULE.write().unwrap_or_else(|p| p.into_inner());
        match guard.take() {
            Some(m) if m.pid == std::process::id() => m,
            other => {
                *guard = other;
                return Err(Pkcs11Error::NotInitialized);
            }
        }
    };
    lock(&module.sessions).clear();
    *lock(&module.pin) = None;
    // Other threads may still hold a reference for a moment; the last one drops it.
    if let Ok(m) = Arc::try_unwrap(module) {
        m.daemon.shutdown();
    }
    Ok(())
}

impl Module {
    pub fn new_session_handle(&self) -> CK_SESSION_HANDLE {
        self.next_session.fetch_add(1, Ordering::Relaxed) as CK_SESSION_HANDLE
    }

    pub fn session(&self, h: CK_SESSION_HANDLE) -> Result<Arc<Mutex<Session>>> {
        lock(&self.sessions)
            .get(&h)
            .map(|(_, s)| s.clone())
            .ok_or(Pkcs11Error::SessionHandleInvalid)
    }

    pub fn logged_in(&self) -> bool {
        lock(&self.pin).is_some()
    }

    /// Re-reads the key directories.
    pub fn refresh(&self) {
        let family = self.family();
        let mut store = lock(&self.store);
        store.family = family;
        store.refresh(&self.dirs);
    }
}
