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
use super::counters::RmCounters;
use super::error::{TpmError, TpmResult, TssResultExt};
use super::rc::ResponseCode;
use super::session::{self, Crypt};
use tpmd_api::dbus::Counters;
use tpmd_tpm2::srk;
use tpmd_tpm2::transport::Transport;

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

    /// Runs `attempt`; if it failed because what we hold went stale, recovers and runs it
    /// once more.
    pub fn recovering<T>(
        &mut self,
        mut attempt: impl FnMut(&mut Self) -> TpmResult<T>,
    ) -> TpmResult<T> {
        match attempt(self) {
            Err(e) => match Self::recovery_for(&e) {
                Some(recovery) => {
                    warn!(error = %e, "recovering TPM state and retrying");
                    self.recover(recovery);
                    attempt(self)
                }
                None => Err(e),
            },
            ok => ok,
        }
    }

    fn recovery_for(error: &TpmError) -> Option<Recovery> {
        if matches!(error, TpmError::Unavailable(_)) {
            return Some(Recovery::Reconnect);
        }
        let rc = error.response_code()?;
        rc.is_stale_state().then_some(Recovery::Restart {
            startup: rc.is_initialize(),
        })
    }

    fn recover(&mut self, recovery: Recovery) {
        self.counters.resets_recovered += 1;
        match recovery {
            Recovery::Reconnect => {
                // Dropping the context releases whatever ESYS still tracks.
                self.ctx = None;
                self.session = None;
                self.persistent.clear();
            }
            Recovery::Restart { startup } => {
                self.close_all_handles();
                if startup {
                    if let Ok(ctx) = self.context() {
                        if let Err(e) = ctx.startup(StartupType::Clear) {
                            warn!(error = %e, "TPM2_Startup after reset failed");
                        }
                    }
                }
            }
        }
        for id in std::mem::take(&mut self.loaded) {
            if let Some(entry) = self.cache.get_mut(&id) {
                entry.handle = None;
            }
        }
    }

    /// Forgets every transient ESYS handle without talking to the TPM: after a reset they
    /// are dead. Persistent objects (the SRK) survive a reset, and so do their handles.
    fn close_all_handles(&mut self) {
        let Some(ctx) = self.ctx.as_mut() else {
            return;
        };
        ctx.clear_sessions();
        let mut handles: Vec<ObjectHandle> = self
            .loaded
            .iter()
            .filter_map(|id| self.cache.get(id).and_then(|e| e.handle))
            .map(ObjectHandle::from)
            .collect();
        if let Some(session) = self.session.take() {
            handles.push(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
                session,
            )));
        }
        for mut handle in handles {
            let _ = ctx.tr_close(&mut handle);
        }
    }

    fn drop_session(&mut self) {
        if let (Some(session), Some(ctx)) = (self.session.take(), self.ctx.as_mut()) {
            ctx.clear_sessions();
            let handle = tss_esapi::handles::SessionHandle::from(session);
            if ctx.flush_context(handle.into()).is_err() {
                let mut handle = ObjectHandle::from(handle);
                let _ = ctx.tr_close(&mut handle);
            }
        }
    }

    /// The shared session, salted to the SRK when there is one.
    fn session(&mut self) -> TpmResult<AuthSession> {
        if let Some(session) = self.session {
            return Ok(session);
        }
        let salt = match self.persistent_handle(srk::SRK_HANDLE) {
            Ok(h) => Some(h),
            Err(TpmError::NoParent { .. }) => {
                warn!("no SRK: the authorization session is not salted");
                None
            }
            Err(e) => return Err(e),
        };
        let session = session::start(self.context()?, salt)?;
        self.session = Some(session);
        Ok(session)
    }

    /// Sets the object's auth value and the session for the next command: the salted
    /// HMAC session when an auth value or a secret parameter is involved, else a password
    /// session, since then nothing on the TPM bus needs protecting (and ESYS's HMAC
    /// session bookkeeping costs more than the TPM's own work on a fast TPM).
    fn prepare_auth(
        &mut self,
        object: ObjectHandle,
        auth: &[u8],
        set_auth: bool,
        crypt: Crypt,
    ) -> TpmResult<()> {
        let plain = auth.is_empty() && crypt == Crypt::Nothing;
        if set_auth {
            let value = Auth::try_from(auth.to_vec()).map_err(|_| {
                TpmError::InvalidArgument(
                    "the auth value is longer than the TPM allows (64 bytes)".into(),
                )
            })?;
            self.context()?
                .tr_set_auth(object, value)
                .tpm("TR_SetAuth")?;
        }
        if plain {
            self.context()?
                .set_sessions((Some(AuthSession::Password), None, None));
            return Ok(());
        }
        let session = self.session()?;
        let ctx = self.context()?;
        session::set_crypt(ctx, session, crypt)?;
        ctx.set_sessions((Some(session), None, None));
        Ok(())
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

    /// The key's handle, loading it from saved context or blob if needed.
    fn ensure_loaded(
        &mut self,
        id: KeyId,
        source: impl FnOnce() -> Source,
    ) -> TpmResult<KeyHandle> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.cache.entry(id).or_insert_with(|| Entry {
            source: source(),
            handle: None,
            saved: None,
            last_used: tick,
            auth_on_handle: Zeroizing::new(Vec::new()),
        });
        entry.last_used = tick;
        if let Some(handle) = entry.handle {
            self.counters.hits += 1;
            return Ok(handle);
        }
        self.check_loaded_objects_survive()?;
        let saved = self.cache.get(&id).and_then(|e| e.saved.clone());
        self.trim_cache();
        if let Some(saved) = saved {
            match self.with_free_slot(&[id], "ContextLoad", |ctx| ctx.context_load(saved.clone())) {
                Ok(object) => {
                    self.counters.context_loads += 1;
                    return Ok(self.mark_loaded(id, KeyHandle::from(object)));
                }
                Err(e) => {
                    debug!(error = %e, "saved context no longer loads; reloading from the blob");
                    self.counters.resets_recovered += 1;
                    if let Some(entry) = self.cache.get_mut(&id) {
                        entry.saved = None;
                    }
                }
            }
        }
        let handle = self.load_from_source(id)?;
        self.counters.loads += 1;
        Ok(self.mark_loaded(id, handle))
    }

    fn mark_loaded(&mut self, id: KeyId, handle: KeyHandle) -> KeyHandle {
        if let Some(entry) = self.cache.get_mut(&id) {
            entry.handle = Some(handle);
            entry.auth_on_handle = Zeroizing::new(Vec::new());
        }
        self.loaded.push(id);
        handle
    }

    fn load_from_source(&mut self, id: KeyId) -> TpmResult<KeyHandle> {
        let blob = match self.cache.get(&id).map(|e| &e.source) {
            Some(Source::Blob(blob)) => blob.clone(),
            Some(Source::OwnerPrimary) => return self.create_owner_primary(),
            None => {
                return Err(TpmError::Stack {
                    command: "Load",
                    detail: "key vanished from the cache".into(),
                })
            }
        };
        let (parent, parent_id) = self.parent_handle(blob.parent)?;
        let private = match &blob.private {
            KeyPrivate::Loadable(private) => private.clone(),
            KeyPrivate::Importable { .. } => {
                let pinned: Vec<KeyId> = [Some(id), parent_id].into_iter().flatten().collect();
                let private = self.import_with(parent, &pinned, &blob)?;
                if let Some(Entry {
                    source: Source::Blob(cached),
                    ..
                }) = self.cache.get_mut(&id)
                {
                    cached.private = KeyPrivate::Loadable(private.clone());
                }
                private
            }
        };
        self.prepare_auth(parent.into(), &[], false, Crypt::Nothing)?;
        let pinned: Vec<KeyId> = [Some(id), parent_id].into_iter().flatten().collect();
        let public = blob.public.clone();
        let object = self
            .with_free_slot(&pinned, "Load", |ctx| {
                ctx.load(parent, private.clone(), public.clone())
                    .map(ObjectHandle::from)
            })
            .map_err(|e| Self::explain_load_failure(e, blob.parent))?;
        Ok(KeyHandle::from(object))
    }

    fn explain_load_failure(error: TpmError, parent: u32) -> TpmError {
        match error.response_code() {
            Some(rc) if rc.is_wrong_parent() => TpmError::WrongTpm { rc },
            _ if matches!(error, TpmError::NoParent { .. }) => {
                TpmError::NoParent { handle: parent }
            }
            _ => error,
        }
    }

    /// TPM2_Import of a duplicate under `parent`.
    fn import_with(
        &mut self,
        parent: KeyHandle,
        pinned: &[KeyId],
        blob: &KeyBlob,
    ) -> TpmResult<Private> {
        let KeyPrivate::Importable { duplicate, seed } = &blob.private else {
            return Err(TpmError::InvalidArgument(
                "this key file is already imported".into(),
            ));
        };
        self.prepare_auth(parent.into(), &[], false, Crypt::Nothing)?;
        let public = blob.public.clone();
        self.with_free_slot(pinned, "Import", |ctx| {
            ctx.import(
                parent.into(),
                None,
                public.clone(),
                duplicate.clone(),
                seed.clone(),
                tss_esapi::structures::SymmetricDefinitionObject::Null,
            )
        })
        .map_err(|e| match e.response_code() {
            Some(rc) if rc.is_wrong_parent() => TpmError::WrongTpm { rc },
            _ => e,
        })
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

    fn create_owner_primary(&mut self) -> TpmResult<KeyHandle> {
        let template = srk::ecc_owner_primary_template().map_err(|e| TpmError::Stack {
            command: "CreatePrimary",
            detail: e.to_string(),
        })?;
        self.prepare_auth(ObjectHandle::Owner, &[], false, Crypt::Nothing)?;
        let object = self.with_free_slot(&[OWNER_PRIMARY_ID], "CreatePrimary", |ctx| {
            ctx.create_primary(Hierarchy::Owner, template.clone(), None, None, None, None)
                .map(|r| ObjectHandle::from(r.key_handle))
        })?;
        Ok(KeyHandle::from(object))
    }

    /// Runs a command that needs a free object slot (a load, or a Create that builds
    /// the object inside the TPM), evicting as needed.
    fn with_free_slot<T>(
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

    /// A TPM reset empties the TPM without telling us. Before the TPM hands out another
    /// object handle, make sure it still holds every object we think is loaded: else a
    /// new object could take the number of a stale one, and since commands without
    /// secrets use password sessions (which do not bind the object's name), a stale
    /// handle would then silently refer to the wrong key. The count of transient
    /// handles is per connection on /dev/tpmrm0 too, so it is a sound check; it costs
    /// one GetCapability per load, none per cache hit.
    fn check_loaded_objects_survive(&mut self) -> TpmResult<()> {
        if self.loaded.is_empty() {
            return Ok(());
        }
        let (data, _) = self.retrying("GetCapability", |ctx| {
            ctx.execute_without_session(|ctx| {
                ctx.get_capability(CapabilityType::Handles, TRANSIENT_FIRST, 64)
            })
        })?;
        let in_tpm = match data {
            CapabilityData::Handles(list) => list.len(),
            _ => return Ok(()),
        };
        if in_tpm < self.loaded.len() {
            warn!(
                in_tpm,
                ours = self.loaded.len(),
                "the TPM no longer holds our loaded keys (was it reset?); reloading from blobs"
            );
            self.recover(Recovery::Restart { startup: false });
            for entry in self.cache.values_mut() {
                entry.saved = None;
            }
        }
        Ok(())
    }

    fn evictable(&self, pinned: &[KeyId]) -> Option<KeyId> {
        self.loaded
            .iter()
            .filter(|id| !pinned.contains(id))
            .min_by_key(|id| self.cache.get(*id).map_or(0, |e| e.last_used))
            .copied()
    }

    fn evict_lru(&mut self, pinned: &[KeyId]) -> TpmResult<()> {
        let victim = self.evictable(pinned).ok_or_else(|| {
            TpmError::Unsupported("the TPM has no free object slot for this operation".into())
        })?;
        self.evict(victim)
    }

    fn evict(&mut self, id: KeyId) -> TpmResult<()> {
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
    fn trim_cache(&mut self) {
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
