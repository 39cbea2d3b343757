//! C_GenerateRandom from the TPM's generator, through tpmd.

use cryptoki_sys::CK_SESSION_HANDLE;

use super::daemon_error;
use crate::error::Result;
use crate::module::Module;

/// What tpmd hands out per call (its limit, so that no caller holds the TPM long).
const PER_CALL: usize = 4096;

impl Module {
    /// Fills `out` with bytes from the TPM.
    pub fn generate_random(&self, h: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
        self.session(h)?;
        for chunk in out.chunks_mut(PER_CALL) {
            let count = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            let bytes = self
                .daemon
                .call(move |p| async move { p.get_random(count).await })
                .map_err(|e| daemon_error(e, false))?;
            if bytes.len() != chunk.len() {
                return Err(crate::error::Pkcs11Error::Device(format!(
                    "tpmd returned {} random bytes for {}",
                    bytes.len(),
                    chunk.len()
                )));
            }
            chunk.copy_from_slice(&bytes);
        }
        Ok(())
    }
}
