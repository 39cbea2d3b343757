//! Recovering from what invalidates the handles we hold: a lost connection, a TPM
//! reset. Blobs are always enough to rebuild.

use super::*;

impl ResourceManager {
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

    pub(super) fn recovery_for(error: &TpmError) -> Option<Recovery> {
        if matches!(error, TpmError::Unavailable(_)) {
            return Some(Recovery::Reconnect);
        }
        let rc = error.response_code()?;
        rc.is_stale_state().then_some(Recovery::Restart {
            startup: rc.is_initialize(),
        })
    }

    pub(super) fn recover(&mut self, recovery: Recovery) {
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
    pub(super) fn close_all_handles(&mut self) {
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

    /// A TPM reset empties the TPM without telling us. Before the TPM hands out another
    /// object handle, make sure it still holds every object we think is loaded: else a
    /// new object could take the number of a stale one, and since commands without
    /// secrets use password sessions (which do not bind the object's name), a stale
    /// handle would then silently refer to the wrong key. The count of transient
    /// handles is per connection on /dev/tpmrm0 too, so it is a sound check; it costs
    /// one GetCapability per load, none per cache hit.
    pub(super) fn check_loaded_objects_survive(&mut self) -> TpmResult<()> {
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
}
