//! Policy sessions' commands: the policy statements of a key file, TPM2_PolicyAuthorize
//! with the ticket it needs (LoadExternal, VerifySignature), and TPM2_PCR_Read.

use tpmd_api::marshal::{put_tpm2b, put_u32, Reader};

use crate::wire::{cc, handle, Command, Response, WireError};

/// A policy statement as a key file stores it: `body` is the command's parameters after
/// the policy session handle (TPM2_PolicyPCR, PolicyAuthValue, PolicyCommandCode,
/// PolicyOR...).
pub fn policy_command(session: u32, command_code: u32, body: &[u8]) -> Command {
    let mut cmd = Command::new(command_code, &[session], 0, 0);
    cmd.params.extend_from_slice(body);
    cmd
}

/// TPM2_LoadExternal of a public key only, in the owner hierarchy (a ticket from the
/// NULL hierarchy would not satisfy TPM2_PolicyAuthorize).
pub fn load_external_public(public: &[u8]) -> Command {
    let mut cmd = Command::new(cc::LOAD_EXTERNAL, &[], 0, 1);
    put_tpm2b(&mut cmd.params, &[]);
    cmd.params.extend_from_slice(public);
    put_u32(&mut cmd.params, handle::OWNER);
    cmd
}

/// The loaded key's handle and name.
pub fn parse_load_external(response: &Response) -> Result<(u32, Vec<u8>), WireError> {
    let handle = super::returned_handle(response)?;
    let mut r = response.reader();
    let name = r.read_tpm2b("name")?.to_vec();
    Ok((handle, name))
}

/// TPM2_VerifySignature of `digest` with a TPMT_SIGNATURE.
pub fn verify_signature(key: u32, digest: &[u8], signature: &[u8]) -> Command {
    let mut cmd = Command::new(cc::VERIFY_SIGNATURE, &[key], 0, 0);
    put_tpm2b(&mut cmd.params, digest);
    cmd.params.extend_from_slice(signature);
    cmd
}

/// The TPMT_TK_VERIFIED ticket, kept as bytes for TPM2_PolicyAuthorize.
pub fn parse_verify_signature(response: &Response) -> Result<Vec<u8>, WireError> {
    let mut r = response.reader();
    r.read_u16("tag")?;
    r.read_u32("hierarchy")?;
    r.read_tpm2b("digest")?;
    r.finish("VerifySignature response")?;
    Ok(response.params.clone())
}

/// TPM2_PolicyAuthorize: replaces the session's digest with the authorized one.
pub fn policy_authorize(
    session: u32,
    approved_policy: &[u8],
    policy_ref: &[u8],
    key_sign_name: &[u8],
    ticket: &[u8],
) -> Command {
    let mut cmd = Command::new(cc::POLICY_AUTHORIZE, &[session], 0, 0);
    put_tpm2b(&mut cmd.params, approved_policy);
    put_tpm2b(&mut cmd.params, policy_ref);
    put_tpm2b(&mut cmd.params, key_sign_name);
    cmd.params.extend_from_slice(ticket);
    cmd
}

/// TPM2_PCR_Read of a TPML_PCR_SELECTION.
pub fn pcr_read(selection: &[u8]) -> Command {
    let mut cmd = Command::new(cc::PCR_READ, &[], 0, 0);
    cmd.params.extend_from_slice(selection);
    cmd
}

/// What TPM2_PCR_Read answered: the selection it read (a TPM reads at most 8 values at
/// once and says which) and the values in selection order.
pub fn parse_pcr_read(response: &Response) -> Result<(Vec<u8>, Vec<Vec<u8>>), WireError> {
    let mut r = response.reader();
    r.read_u32("pcrUpdateCounter")?;
    let start = r.position();
    skip_selection(&mut r)?;
    let selection = response.params[start..r.position()].to_vec();
    let count = r.read_u32("TPML_DIGEST count")?;
    let mut values = Vec::new();
    for _ in 0..count {
        values.push(r.read_tpm2b("PCR value")?.to_vec());
    }
    r.finish("PCR_Read response")?;
    Ok((selection, values))
}

fn skip_selection(r: &mut Reader<'_>) -> Result<(), WireError> {
    let count = r.read_u32("TPML_PCR_SELECTION count")?;
    for _ in 0..count {
        r.read_u16("hash")?;
        let size = usize::from(r.read_u8("sizeofSelect")?);
        r.read_bytes(size, "pcrSelect")?;
    }
    Ok(())
}

/// TPM2_PolicyRestart: the session's digest back to zero, to try another branch.
pub fn policy_restart(session: u32) -> Command {
    Command::new(cc::POLICY_RESTART, &[session], 0, 0)
}

/// TPM2_PCR_Extend of one bank (authorized with the PCR's empty auth value).
pub fn pcr_extend(pcr: u32, hash_alg: u16, digest: &[u8]) -> Command {
    let mut cmd = Command::new(cc::PCR_EXTEND, &[pcr], 1, 0);
    put_u32(&mut cmd.params, 1);
    cmd.params.extend_from_slice(&hash_alg.to_be_bytes());
    cmd.params.extend_from_slice(digest);
    cmd
}

/// TPM2_PolicyGetDigest: the session's current digest.
pub fn policy_get_digest(session: u32) -> Command {
    Command::new(cc::POLICY_GET_DIGEST, &[session], 0, 0)
}

pub fn parse_policy_get_digest(response: &Response) -> Result<Vec<u8>, WireError> {
    let mut r = response.reader();
    let digest = r.read_tpm2b("policyDigest")?.to_vec();
    r.finish("PolicyGetDigest response")?;
    Ok(digest)
}
