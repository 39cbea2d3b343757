//! Recovering from what invalidates the handles we hold: a lost connection, a TPM
//! reset, a connection the kernel gave up. Key files are always enough to rebuild.

use tpmd_tpm2::wire::ops;
use tracing::{info, warn};

use super::*;

/// What a failed attempt needs before the next one.
#[derive(Debug, Clone, Copy)]
pub(super) enum Recovery {
    /// The connection failed: open a new one.
    Reconnect,
    /// The TPM no longer holds what we think it holds (a reset); `startup` if it waits
    /// for TPM2_Startup.
    Restart { startup: bool },
}

impl ResourceManager {
    /// Once the main connection is open: an owned TPM is started if it waits for it,
    /// left with no stale objects of ours, and its slot budget sized.
    pub(super) fn started(&mut self) -> TpmResult<()> {
        match self.property(ops::pt::HR_TRANSIENT_AVAIL) {
            Err(e) if e.response_code().is_some_and(|rc| rc.is_initialize()) => {
                self.startup();
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if matches!(self.strategy, Strategy::Owned { .. }) {
            self.flush_leftovers()?;
            self.recompute_budget();
        }
        Ok(())
    }

    fn startup(&mut self) {
        info!("the TPM was reset and waits for TPM2_Startup; starting it");
        if let Err(e) = self.execute(&ops::startup(ops::SU_CLEAR), &Authorization::None) {
            warn!(error = %e, "TPM2_Startup failed");
        }
    }

    /// Runs `attempt`; if it failed because what we hold went stale, recovers and runs
    /// it once more. `key` is the cached key the attempt used, if any.
    pub(super) fn recovering<T>(
        &mut self,
        key: Option<KeyId>,
        mut attempt: impl FnMut(&mut Self) -> TpmResult<T>,
    ) -> TpmResult<T> {
        match attempt(self) {
            Err(e) => match Self::recovery_for(&e) {
                Some(recovery) => {
                    warn!(error = %e, "recovering TPM state and retrying");
                    self.recover(recovery, key)?;
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
        rc.is_lost_handle().then_some(Recovery::Restart {
            startup: rc.is_initialize(),
        })
    }

    fn recover(&mut self, recovery: Recovery, key: Option<KeyId>) -> TpmResult<()> {
        self.counters.resets_recovered += 1;
        // Tickets outlive a reset in the TPM's eyes, but are cheap to make again: start
        // afresh rather than trust what a restarted TPM may no longer accept.
        self.tickets.clear();
        match self.strategy {
            Strategy::KernelRm { .. } => {
                // Each connection finds out for itself; this one starts afresh.
                if let Some(id) = key {
                    self.evict(id, false);
                }
                match recovery {
                    Recovery::Reconnect => self.main = None,
                    Recovery::Restart { startup: true } => self.startup(),
                    Recovery::Restart { startup: false } => {}
                }
                Ok(())
            }
            Strategy::Owned { .. } => {
                self.lost_loaded_objects(None);
                match recovery {
                    Recovery::Reconnect => {
                        self.main = None;
                        self.main()?;
                        self.started()
                    }
                    Recovery::Restart { startup } => {
                        if startup {
                            self.startup();
                        }
                        self.recompute_budget();
                        Ok(())
                    }
                }
            }
        }
    }

    /// Owned: the TPM was reset and no longer holds our loaded objects or our session:
    /// forget their handles without flushing (they may now name other objects), but
    /// `keep`'s, and the contexts saved before the reset, which no longer load.
    pub(super) fn lost_loaded_objects(&mut self, keep: Option<KeyId>) {
        for id in self.cache.ids() {
            if Some(id) == keep {
                continue;
            }
            if let Some(entry) = self.cache.get_mut(&id) {
                entry.saved = None;
                if matches!(entry.residence, Residence::Main(_)) {
                    entry.residence = Residence::Unloaded;
                }
            }
        }
        if let Some(main) = self.main.as_mut() {
            main.forget_session();
        }
    }
}
