//! [`Backend`] for a TPM 2.0: each request parses its key file and runs the matching
//! operation on the resource manager.

use tpmd_api::dbus::{Counters, Info};
use tpmd_tpm2::transport::Transport;

use super::blob::KeyBlob;
use super::{info, ops, ResourceManager};
use crate::backend::{Backend, DecryptRequest, Family, SignRequest, TpmError, TpmResult};

pub struct Tpm2Backend {
    rm: ResourceManager,
}

impl Tpm2Backend {
    pub fn open(transport: Transport, budget: usize) -> TpmResult<Tpm2Backend> {
        Ok(Tpm2Backend {
            rm: ResourceManager::open(transport, budget)?,
        })
    }

    /// The resource manager itself, for benchmarks that measure it without D-Bus.
    pub fn resource_manager(&mut self) -> &mut ResourceManager {
        &mut self.rm
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
        let (file, blob) = KeyBlob::parse(key)?;
        Ok(ops::import(&mut self.rm, &file, &blob)?.to_pem())
    }

    fn generate(&mut self, key_type: &str, auth: &[u8], parent: u32) -> TpmResult<String> {
        Ok(ops::generate(&mut self.rm, key_type, auth, parent)?.to_pem())
    }

    fn sign(&mut self, key: &[u8], auth: &[u8], request: &SignRequest<'_>) -> TpmResult<Vec<u8>> {
        let (file, blob) = KeyBlob::parse(key)?;
        ops::sign(&mut self.rm, &file, &blob, auth, request)
    }

    fn decrypt(
        &mut self,
        key: &[u8],
        auth: &[u8],
        request: &DecryptRequest<'_>,
    ) -> TpmResult<Vec<u8>> {
        let (file, blob) = KeyBlob::parse(key)?;
        ops::decrypt(
            &mut self.rm,
            &file,
            &blob,
            auth,
            request.scheme,
            request.hash,
            request.ciphertext,
        )
    }

    fn create_srk(&mut self) -> TpmResult<bool> {
        ops::create_srk(&mut self.rm)
    }

    fn reset_lockout(&mut self) -> TpmResult<()> {
        // tss-esapi 7.7 lacks TPM2_DictionaryAttackLockReset; tpm2-tools has it and works
        // beside tpmd through the kernel's resource manager.
        Err(TpmError::Unsupported(
            "tpmd cannot reset a TPM 2.0's lockout yet: run `tpm2_dictionarylockout --clear-lockout` (it works beside tpmd through /dev/tpmrm0)".into(),
        ))
    }

    fn lock_nv(&mut self) -> TpmResult<bool> {
        Err(TpmError::Unsupported(
            "a TPM 2.0 has no global NV lock: each NV index has its own write protection, so there is nothing to lock".into(),
        ))
    }

    fn lockout_note(&mut self) -> String {
        info::lockout_note(&mut self.rm)
    }

    fn flush_all(&mut self) {
        self.rm.flush_all();
    }
}
