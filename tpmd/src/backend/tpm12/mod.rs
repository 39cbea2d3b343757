//! The TPM 1.2 backend: our own codec (crate `tpmd-tpm12`) under the same resource
//! management policy as the 2.0 backend.

use tpmd_tpm2::transport::Transport;

use super::{Backend, TpmError, TpmResult};

/// Opens a TPM 1.2 at `transport` with at most `budget` keys loaded at once.
pub fn open(transport: Transport, budget: usize) -> TpmResult<Box<dyn Backend>> {
    let _ = budget;
    Err(TpmError::Unsupported(format!(
        "{transport} is a TPM 1.2, which this build of tpmd cannot drive yet"
    )))
}
