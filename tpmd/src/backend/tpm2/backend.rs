//! [`Backend`] for a TPM 2.0: each request finds its key file parsed in the cache (or
//! parses it once) and runs the matching operation on the resource manager.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tpmd_api::dbus::{Counters, Info};
use tpmd_api::marshal::TPMA_OBJECT_NO_DA;
use tpmd_tpm2::transport::Transport;

use super::blob::{key_id, KeyBlob, KeyId};
use super::{info, ops, pcrs, ResourceManager, Strategy};
use crate::backend::{
    Backend, DaState, DecryptRequest, Family, KeyBinding, PcrValue, SignRequest, TpmError,
    TpmResult,
};
use tpmd_api::policy::PcrBank;

/// Parsed key files kept beside the resource manager's cache, so that a hot key costs a
/// hash, not an ASN.1 and TPM2B parse.
const MAX_PARSED: usize = 4096;

pub struct Tpm2Backend {
    rm: ResourceManager,
    parsed: HashMap<KeyId, Arc<KeyBlob>>,
    /// Where signed policies are found for keys whose policy starts with
    /// TPM2_PolicyAuthorize.
    policy_dir: Option<PathBuf>,
}

impl Tpm2Backend {
    pub fn open(transport: Transport, strategy: Strategy) -> TpmResult<Tpm2Backend> {
        Ok(Tpm2Backend {
            rm: ResourceManager::open(transport, strategy)?,
            parsed: HashMap::new(),
            policy_dir: None,
        })
    }

    pub fn set_policy_dir(&mut self, dir: Option<PathBuf>) {
        self.policy_dir = dir;
    }

    /// The resource manager itself, for benchmarks that measure it without D-Bus.
    pub fn resource_manager(&mut self) -> &mut ResourceManager {
        &mut self.rm
    }

    /// The key file `bytes`, parsed once.
    pub fn blob(&mut self, bytes: &[u8]) -> TpmResult<Arc<KeyBlob>> {
        let id = key_id(bytes);
        if let Some(blob) = self.parsed.get(&id) {
            return Ok(blob.clone());
        }
        let blob = KeyBlob::parse(bytes)?;
        if self.parsed.len() >= MAX_PARSED {
            self.parsed.clear();
        }
        self.parsed.insert(id, blob.clone());
        Ok(blob)
    }
}

impl Backend for Tpm2Backend {
    fn family(&self) -> Family {
        Family::Tpm2
    }

    fn info(&mut self) -> TpmResult<Info> {
        info::info(&mut self.rm)
    }

    fn counters(&self) -> Counters {
        self.rm.counters()
    }

    fn count_request(&mut self) {
        self.rm.count_request();
    }

    fn count_failure(&mut self) {
        self.rm.count_failure();
    }

    fn parent_public(&mut self, parent: u32) -> TpmResult<Vec<u8>> {
        ops::parent_public(&mut self.rm, parent)
    }

    fn import(&mut self, key: &[u8]) -> TpmResult<String> {
        let blob = self.blob(key)?;
        Ok(ops::import(&mut self.rm, &blob)?.to_pem())
    }

    fn generate(
        &mut self,
        key_type: &str,
        auth: &[u8],
        parent: u32,
        binding: &KeyBinding,
    ) -> TpmResult<String> {
        if binding.pcr_info.is_some() {
            return Err(TpmError::InvalidArgument(
                "pcr-info is a TPM 1.2 binding; on a TPM 2.0 bind a key with policy-digest".into(),
            ));
        }
        let digest = binding.policy_digest.as_deref();
        Ok(ops::generate(&mut self.rm, key_type, auth, parent, digest)?.to_pem())
    }

    fn read_pcrs(&mut self, selection: &[PcrBank]) -> TpmResult<Vec<PcrValue>> {
        pcrs::read_pcrs(&mut self.rm, selection)
    }

    fn sign(&mut self, key: &[u8], auth: &[u8], request: &SignRequest<'_>) -> TpmResult<Vec<u8>> {
        let blob = self.blob(key)?;
        let key_use = ops::KeyUse {
            policy_dir: self.policy_dir.as_deref(),
        };
        ops::sign(&mut self.rm, &blob, auth, request, key_use)
    }

    fn decrypt(
        &mut self,
        key: &[u8],
        auth: &[u8],
        request: &DecryptRequest<'_>,
    ) -> TpmResult<Vec<u8>> {
        let blob = self.blob(key)?;
        let key_use = ops::KeyUse {
            policy_dir: self.policy_dir.as_deref(),
        };
        ops::decrypt(&mut self.rm, &blob, auth, request, key_use)
    }

    fn random(&mut self, count: usize) -> TpmResult<Vec<u8>> {
        ops::random(&mut self.rm, count)
    }

    fn change_auth(&mut self, key: &[u8], old_auth: &[u8], new_auth: &[u8]) -> TpmResult<String> {
        let blob = self.blob(key)?;
        Ok(ops::change_auth(&mut self.rm, &blob, old_auth, new_auth)?.to_pem())
    }

    fn create_srk(&mut self) -> TpmResult<bool> {
        ops::create_srk(&mut self.rm)
    }

    fn reset_lockout(&mut self, lockout_auth: &[u8]) -> TpmResult<()> {
        // The lockout hierarchy's auth value is empty unless someone set one.
        ops::reset_lockout(&mut self.rm, lockout_auth)
    }

    fn da_state(&mut self) -> TpmResult<DaState> {
        info::da_state(&mut self.rm)
    }

    fn key_counts_auth_failures(&mut self, key: &[u8]) -> TpmResult<bool> {
        Ok(self.blob(key)?.public.attributes & TPMA_OBJECT_NO_DA == 0)
    }

    fn lock_nv(&mut self) -> TpmResult<bool> {
        Err(TpmError::Unsupported(
            "a TPM 2.0 has no global NV lock: each NV index has its own write protection, so there is nothing to lock".into(),
        ))
    }

    fn flush_all(&mut self) {
        self.rm.flush_all();
    }

    fn idle(&mut self) {
        self.rm.release_connection();
    }
}
