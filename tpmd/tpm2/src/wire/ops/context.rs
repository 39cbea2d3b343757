//! Saving, loading and flushing contexts.

use tpmd_api::marshal::put_u32;

use crate::wire::{cc, Command, Response, WireError};

pub fn context_save(handle: u32) -> Command {
    Command::new(cc::CONTEXT_SAVE, &[handle], 0, 0)
}

/// The TPMS_CONTEXT, kept as the bytes ContextLoad takes back.
pub fn parse_context_save(response: &Response) -> Result<Vec<u8>, WireError> {
    let mut r = response.reader();
    r.read_bytes(8 + 4 + 4, "TPMS_CONTEXT header")?;
    r.read_tpm2b("contextBlob")?;
    r.finish("TPMS_CONTEXT")?;
    Ok(response.params.clone())
}

pub fn context_load(context: &[u8]) -> Command {
    let mut cmd = Command::new(cc::CONTEXT_LOAD, &[], 0, 1);
    cmd.params.extend_from_slice(context);
    cmd
}

/// The handle is a parameter of TPM2_FlushContext, not part of its handle area.
pub fn flush_context(handle: u32) -> Command {
    let mut cmd = Command::new(cc::FLUSH_CONTEXT, &[], 0, 0);
    put_u32(&mut cmd.params, handle);
    cmd
}

/// The handle a command that creates an object or session returned.
pub fn returned_handle(response: &Response) -> Result<u32, WireError> {
    response
        .handles
        .first()
        .copied()
        .ok_or(WireError::Layout("no handle in the response"))
}
