//! The TPM 1.2 backend: our own codec and client (crate `tpmd-tpm12`) under the same
//! resource management policy as the 2.0 backend.

mod error;
mod info;
mod key;
mod ops;
mod resource_manager;

use tpmd_api::dbus::{Counters, Info};
use tpmd_tpm12::client::Tpm12;
use tpmd_tpm12::codec::consts::auth_usage;
use tpmd_tpm12::codec::AuthSecret;
use tpmd_tpm2::transport::Transport;
use tracing::{info, warn};

use tpmd_api::policy::PcrBank;

use super::{
    Backend, DaState, DecryptRequest, Family, KeyBinding, PcrValue, SignRequest, TpmError,
    TpmResult,
};
use key::Key;
pub use resource_manager::ResourceManager;

/// Keys loaded at once on a TPM 1.2 unless configured.
pub const DEFAULT_BUDGET: usize = 3;

/// Opens a TPM 1.2 at `transport` with at most `budget` keys loaded at once. `srk_auth`
/// is the SRK's password when it is not one of the well-known secrets.
pub fn open(
    transport: Transport,
    budget: usize,
    srk_auth: Option<&[u8]>,
) -> TpmResult<Box<dyn Backend>> {
    let mut backend = Tpm12Backend::open(transport, budget)?;
    if let Some(password) = srk_auth {
        backend
            .rm
            .tpm()
            .set_srk_secret(AuthSecret::from_password(password));
    }
    Ok(Box::new(backend))
}

pub struct Tpm12Backend {
    rm: ResourceManager,
    transport: String,
}

impl Tpm12Backend {
    pub fn open(transport: Transport, budget: usize) -> TpmResult<Tpm12Backend> {
        let mut tpm =
            Tpm12::connect(transport.clone()).map_err(|e| TpmError::Unavailable(e.to_string()))?;
        // A TPM 2.0 answers a 1.2 command with an error; say so instead of failing later.
        tpm.version_info().map_err(|e| {
            TpmError::Unavailable(format!(
                "{transport} does not answer as a TPM 1.2 ({e}); drop --tpm12 if it is a TPM 2.0"
            ))
        })?;
        // tpmd has a TPM 1.2 to itself (there is no kernel resource manager for one): what
        // is loaded now, a tpmd killed before its exit left there.
        match tpm.flush_left_behind() {
            Ok((0, 0)) => {}
            Ok((keys, sessions)) => info!(
                keys,
                sessions, "flushed the keys and auth sessions a previous tpmd left in the TPM"
            ),
            Err(e) => warn!("cannot list what the TPM holds to flush leftovers: {e}"),
        }
        // The TPM thread releases it when idle (Backend::idle).
        tpm.hold_connection();
        Ok(Tpm12Backend {
            rm: ResourceManager::new(tpm, budget),
            transport: transport.to_string(),
        })
    }

    /// The resource manager itself, for benchmarks that measure it without D-Bus.
    pub fn resource_manager(&mut self) -> &mut ResourceManager {
        &mut self.rm
    }
}

impl Backend for Tpm12Backend {
    fn family(&self) -> Family {
        Family::Tpm12
    }

    fn info(&mut self) -> TpmResult<Info> {
        info::info(&mut self.rm, self.transport.clone())
    }

    fn counters(&self) -> Counters {
        self.rm.counters()
    }

    fn count_request(&mut self) {
        self.rm.counters.requests += 1;
    }

    fn count_failure(&mut self) {
        self.rm.counters.failures += 1;
    }

    fn parent_public(&mut self, parent: u32) -> TpmResult<Vec<u8>> {
        ops::parent_public(&mut self.rm, parent)
    }

    fn import(&mut self, key: &[u8]) -> TpmResult<String> {
        ops::import(&mut self.rm, &Key::parse(key)?)
    }

    fn generate(
        &mut self,
        key_type: &str,
        auth: &[u8],
        parent: u32,
        binding: &KeyBinding,
    ) -> TpmResult<String> {
        if binding.policy_digest.is_some() {
            return Err(TpmError::Unsupported(
                "a TPM 1.2 key has no policy digest: TPM 2.0 policies (PCR and signed policies) need a TPM 2.0; a 1.2 binds a key to sha1 PCR values (pcr-info)".into(),
            ));
        }
        ops::generate(
            &mut self.rm,
            key_type,
            auth,
            parent,
            binding.pcr_info.as_deref(),
        )
    }

    fn read_pcrs(&mut self, selection: &[PcrBank]) -> TpmResult<Vec<PcrValue>> {
        ops::read_pcrs(&mut self.rm, selection)
    }

    fn sign(&mut self, key: &[u8], auth: &[u8], request: &SignRequest<'_>) -> TpmResult<Vec<u8>> {
        ops::sign(&mut self.rm, &Key::parse(key)?, auth, request)
    }

    fn decrypt(
        &mut self,
        key: &[u8],
        auth: &[u8],
        request: &DecryptRequest<'_>,
    ) -> TpmResult<Vec<u8>> {
        ops::decrypt(&mut self.rm, &Key::parse(key)?, auth, request)
    }

    fn random(&mut self, count: usize) -> TpmResult<Vec<u8>> {
        ops::random(&mut self.rm, count)
    }

    fn change_auth(&mut self, _key: &[u8], _old: &[u8], _new: &[u8]) -> TpmResult<String> {
        Err(TpmError::Unsupported(
            "changing a key's auth value is not supported on a TPM 1.2 yet; wrap the original key again with the new one".into(),
        ))
    }

    fn create_srk(&mut self) -> TpmResult<bool> {
        ops::create_srk(&mut self.rm)
    }

    fn reset_lockout(&mut self, owner_auth: &[u8]) -> TpmResult<()> {
        if !owner_auth.is_empty() {
            return Err(TpmError::Unsupported(
                "on a TPM 1.2 tpmd resets the lockout with the well-known owner secret only; drop --auth-file".into(),
            ));
        }
        ops::reset_lockout(&mut self.rm)
    }

    fn da_state(&mut self) -> TpmResult<DaState> {
        info::da_state(&mut self.rm)
    }

    fn key_counts_auth_failures(&mut self, key: &[u8]) -> TpmResult<bool> {
        // TPM 1.2 has no noDA: every key the TPM checks an auth value for counts.
        Ok(Key::parse(key)?.key.auth_data_usage != auth_usage::NEVER)
    }

    fn lock_nv(&mut self) -> TpmResult<bool> {
        ops::lock_nv(&mut self.rm)
    }

    fn flush_all(&mut self) {
        self.rm.flush_all();
    }

    fn idle(&mut self) {
        self.rm.tpm().release_connection();
    }
}

#[cfg(all(test, feature = "simulator"))]
mod tests;
