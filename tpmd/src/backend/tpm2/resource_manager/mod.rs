//! The in-process resource manager: the one owner of the TPM connection.
//!
//! Keys are cached by the digest of their blob. A TPM has only a few object slots (three
//! on swtpm), so at most `budget` keys are loaded at once; the least recently used one
//! is evicted when another needs a slot or the TPM reports object memory full. An
//! evicted key keeps its saved context (saved once, loadable many times), so its return
//! costs a ContextLoad rather than a Load. Anything that invalidates what we hold (a TPM
//! reset, a restarted simulator) is recovered from the blobs, which are always enough.

use std::collections::HashMap;
use std::thread::sleep;
use std::time::Duration;

use tracing::{debug, info, warn};
use tss_esapi::constants::{CapabilityType, StartupType};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::CapabilityData;
use tss_esapi::structures::{Auth, Private};
use tss_esapi::utils::TpmsContext;
use tss_esapi::Context;
use zeroize::Zeroizing;

use super::blob::{KeyBlob, KeyId, KeyPrivate};
use super::error::{TpmError, TpmResult, TssResultExt};
use super::rc::ResponseCode;
use super::session::{self, Crypt};
use crate::backend::counters::RmCounters;
use tpmd_api::dbus::Counters;
use tpmd_tpm2::srk;
use tpmd_tpm2::transport::{OpenEsys, Transport};

mod auth;
mod loading;
mod recovery;
mod slots;

/// Pseudo key id of the ECC P-256 primary under the owner hierarchy (parent 0x40000001).
const OWNER_PRIMARY_ID: KeyId = [0xFF; 32];
const RETRY_LIMIT: u32 = 8;
/// First transient object handle (TPM_HT_TRANSIENT << 24).
const TRANSIENT_FIRST: u32 = 0x8000_0000;
const DEFAULT_MAX_CACHED: usize = 4096;

#[derive(Debug)]
enum Source {
    Blob(KeyBlob),
    OwnerPrimary,
}

#[derive(Debug)]
struct Entry {
    source: Source,
    handle: Option<KeyHandle>,
    saved: Option<TpmsContext>,
    last_used: u64,
    /// The auth value ESYS holds for `handle`; setting it costs more than a fast TPM's
    /// signature, so it is set only when it changes.
    auth_on_handle: Zeroizing<Vec<u8>>,
}

pub struct ResourceManager {
    transport: Transport,
    ctx: Option<Context>,
    session: Option<AuthSession>,
    persistent: HashMap<u32, KeyHandle>,
    cache: HashMap<KeyId, Entry>,
    loaded: Vec<KeyId>,
    tick: u64,
    budget: usize,
    max_cached: usize,
    counters: RmCounters,
}

/// What a failed attempt needs before the next one.
enum Recovery {
    Reconnect,
    Restart { startup: bool },
}

impl ResourceManager {
    /// Opens the TPM. `budget` is how many keys may be loaded at once.
    pub fn open(transport: Transport, budget: usize) -> TpmResult<ResourceManager> {
        let ctx = transport
            .open()
            .map_err(|e| TpmError::Unavailable(e.to_string()))?;
        Ok(ResourceManager {
            transport,
            ctx: Some(ctx),
            session: None,
            persistent: HashMap::new(),
            cache: HashMap::new(),
            loaded: Vec::new(),
            tick: 0,
            budget: budget.max(1),
            max_cached: DEFAULT_MAX_CACHED,
            counters: RmCounters::default(),
        })
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn counters(&self) -> Counters {
        self.counters.snapshot(self.cache.len(), self.loaded.len())
    }

    pub fn count_request(&mut self) {
        self.counters.requests += 1;
    }

    pub fn count_failure(&mut self) {
        self.counters.failures += 1;
    }

    /// The ESAPI context, reconnecting if the previous connection was lost.
    pub fn context(&mut self) -> TpmResult<&mut Context> {
        if self.ctx.is_none() {
            info!(transport = %self.transport, "reconnecting to the TPM");
            let ctx = self
                .transport
                .open()
                .map_err(|e| TpmError::Unavailable(e.to_string()))?;
            self.ctx = Some(ctx);
        }
        self.ctx
            .as_mut()
            .ok_or_else(|| TpmError::Unavailable("no TPM connection".into()))
    }

    /// Runs one TPM command, retrying the transient warnings with backoff.
    pub fn retrying<T>(
        &mut self,
        command: &'static str,
        mut f: impl FnMut(&mut Context) -> tss_esapi::Result<T>,
    ) -> TpmResult<T> {
        let mut delay = Duration::from_millis(1);
        let mut attempt = 0;
        loop {
            let result = f(self.context()?);
            match result {
                Err(e)
                    if attempt < RETRY_LIMIT
                        && ResponseCode::of(&e).is_some_and(|rc| rc.is_retryable()) =>
                {
                    attempt += 1;
                    self.counters.retries += 1;
                    debug!(command, attempt, "TPM asked to retry");
                    sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                other => return other.tpm(command),
            }
        }
    }

    /// Runs `op` with `blob` loaded and its auth value set, recovering once from a lost
    /// connection or a TPM reset.
    pub fn with_key<T>(
        &mut self,
        blob: &KeyBlob,
        auth: &[u8],
        crypt: Crypt,
        command: &'static str,
        mut op: impl FnMut(&mut Context, KeyHandle) -> tss_esapi::Result<T>,
    ) -> TpmResult<T> {
        self.recovering(|rm| {
            let started = std::time::Instant::now();
            let handle = rm.ensure_loaded(blob.id, || Source::Blob(blob.clone()))?;
            let auth_changed = rm
                .cache
                .get(&blob.id)
                .is_none_or(|e| e.auth_on_handle.as_slice() != auth);
            rm.prepare_auth(handle.into(), auth, auth_changed, crypt)?;
            if auth_changed {
                if let Some(entry) = rm.cache.get_mut(&blob.id) {
                    entry.auth_on_handle = Zeroizing::new(auth.to_vec());
                }
            }
            let prepared = started.elapsed();
            let result = rm.retrying(command, |ctx| op(ctx, handle));
            debug!(
                command,
                prepare_us = prepared.as_micros() as u64,
                total_us = started.elapsed().as_micros() as u64,
                "key operation"
            );
            if matches!(result, Err(TpmError::AuthFailed { .. })) {
                // The failed HMAC leaves the session's nonces in doubt; start afresh.
                rm.drop_session();
            }
            result
        })
    }

    /// Runs `op` on the loaded parent `parent` (Import, Create), with recovery.
    pub fn with_parent<T>(
        &mut self,
        parent: u32,
        crypt: Crypt,
        command: &'static str,
        mut op: impl FnMut(&mut Context, KeyHandle) -> tss_esapi::Result<T>,
    ) -> TpmResult<T> {
        self.recovering(|rm| {
            rm.check_loaded_objects_survive()?;
            let (handle, parent_id) = rm.parent_handle(parent)?;
            rm.prepare_auth(handle.into(), &[], false, crypt)?;
            let pinned: Vec<KeyId> = parent_id.into_iter().collect();
            rm.with_free_slot(&pinned, command, |ctx| op(ctx, handle))
        })
    }

    /// ESYS handle of a persistent object, looked up once.
    pub fn persistent_handle(&mut self, handle: u32) -> TpmResult<KeyHandle> {
        if let Some(h) = self.persistent.get(&handle) {
            return Ok(*h);
        }
        let tpm_handle = PersistentTpmHandle::new(handle)
            .map(TpmHandle::Persistent)
            .map_err(|_| {
                TpmError::InvalidArgument(format!("{handle:#010x} is not a persistent handle"))
            })?;
        let result = self
            .context()?
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(tpm_handle));
        let object = match result {
            Ok(object) => object,
            Err(e) => {
                let rc = ResponseCode::of(&e);
                if rc.is_some_and(|rc| rc.is_transport_failure()) {
                    return Err(TpmError::from_tss("ReadPublic", e));
                }
                return Err(TpmError::NoParent { handle });
            }
        };
        let key = KeyHandle::from(object);
        self.persistent.insert(handle, key);
        Ok(key)
    }

    /// Forget looked-up persistent handles (after creating or evicting one).
    pub fn forget_persistent(&mut self) {
        // The session may have been started unsalted for want of an SRK.
        self.drop_session();
        if let Some(ctx) = self.ctx.as_mut() {
            for (_, h) in self.persistent.drain() {
                let mut object = ObjectHandle::from(h);
                let _ = ctx.tr_close(&mut object);
            }
        }
    }

    /// A loaded parent for `parent`, and its cache id if it occupies a slot.
    fn parent_handle(&mut self, parent: u32) -> TpmResult<(KeyHandle, Option<KeyId>)> {
        if parent == tpmd_api::OWNER_HIERARCHY_HANDLE {
            let h = self.ensure_loaded(OWNER_PRIMARY_ID, || Source::OwnerPrimary)?;
            return Ok((h, Some(OWNER_PRIMARY_ID)));
        }
        if parent >> 24 == 0x81 {
            return Ok((self.persistent_handle(parent)?, None));
        }
        Err(TpmError::Unsupported(format!(
            "parent {parent:#010x} is neither a persistent key nor the owner hierarchy"
        )))
    }

    /// Imports a duplicate and returns the loadable private part (the D-Bus Import).
    pub fn import(&mut self, blob: &KeyBlob) -> TpmResult<Private> {
        self.recovering(|rm| {
            rm.check_loaded_objects_survive()?;
            let (parent, parent_id) = rm.parent_handle(blob.parent)?;
            let pinned: Vec<KeyId> = parent_id.into_iter().collect();
            rm.import_with(parent, &pinned, blob)
        })
    }

    /// Flushes every object we loaded; used at shutdown so nothing is left in the TPM.
    pub fn flush_all(&mut self) {
        for id in self.loaded.clone() {
            let _ = self.evict(id);
        }
        self.drop_session();
    }
}

impl Drop for ResourceManager {
    fn drop(&mut self) {
        self.flush_all();
    }
}
