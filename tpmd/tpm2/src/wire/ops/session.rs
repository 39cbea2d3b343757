//! TPM2_StartAuthSession.

use tpmd_api::marshal::{put_tpm2b, put_u16, TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_NULL};

use crate::wire::{cc, Command, Response, WireError};

pub const SESSION_HMAC: u8 = 0x00;
pub const SESSION_POLICY: u8 = 0x01;
pub const SESSION_TRIAL: u8 = 0x03;

/// A session's parameter-encryption algorithm: AES in CFB mode, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCipher {
    None,
    AesCfb { key_bits: u16 },
}

/// TPM2_StartAuthSession. `tpm_key` is the key the salt is encrypted to (TPM_RH_NULL
/// for an unsalted session), `bind` the entity it is bound to (TPM_RH_NULL for none).
pub fn start_auth_session(
    tpm_key: u32,
    bind: u32,
    nonce_caller: &[u8],
    encrypted_salt: &[u8],
    session_type: u8,
    cipher: SessionCipher,
    auth_hash: u16,
) -> Command {
    let mut cmd = Command::new(cc::START_AUTH_SESSION, &[tpm_key, bind], 0, 1);
    put_tpm2b(&mut cmd.params, nonce_caller);
    put_tpm2b(&mut cmd.params, encrypted_salt);
    cmd.params.push(session_type);
    match cipher {
        SessionCipher::None => put_u16(&mut cmd.params, TPM_ALG_NULL),
        SessionCipher::AesCfb { key_bits } => {
            put_u16(&mut cmd.params, TPM_ALG_AES);
            put_u16(&mut cmd.params, key_bits);
            put_u16(&mut cmd.params, TPM_ALG_CFB);
        }
    }
    put_u16(&mut cmd.params, auth_hash);
    cmd
}

/// The session handle and the TPM's first nonce.
pub fn parse_start_auth_session(response: &Response) -> Result<(u32, Vec<u8>), WireError> {
    let handle = super::returned_handle(response)?;
    let mut r = response.reader();
    let nonce = r.read_tpm2b("nonceTPM")?.to_vec();
    r.finish("StartAuthSession response")?;
    Ok((handle, nonce))
}
