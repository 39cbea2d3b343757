//! TPM_LoadKey2, TPM_GetPubKey, TPM_Sign, TPM_UnBind, TPM_CreateWrapKey,
//! TPM_SaveContext and TPM_LoadContext.

use crate::codec::consts::ord;
use crate::codec::frame::Command;
use crate::codec::key::{Key12, PubKey};
use crate::codec::wire::{CodecError, Reader, Writer};

/// LoadKey2 under `parent` (auth: the parent's usage secret). The new handle is a
/// response handle, outside the response HMAC.
pub fn load_key2(parent: u32, key_blob: &[u8]) -> Command {
    let mut c = Command::new(ord::LOAD_KEY2);
    c.handles = vec![parent];
    c.params = key_blob.to_vec();
    c.response_handles = 1;
    c
}

/// GetPubKey of a loaded key (auth: the key's usage secret).
pub fn get_pub_key(key: u32) -> Command {
    let mut c = Command::new(ord::GET_PUB_KEY);
    c.handles = vec![key];
    c
}

pub fn parse_pub_key(params: &[u8]) -> Result<PubKey, CodecError> {
    PubKey::from_bytes(params)
}

/// Sign: for TPM_SS_RSASSAPKCS1v15_DER `data` is a DER DigestInfo; for the SHA-1
/// scheme a 20-byte digest.
pub fn sign(key: u32, data: &[u8]) -> Command {
    let mut c = Command::new(ord::SIGN);
    c.handles = vec![key];
    let mut w = Writer::new();
    w.sized32(data);
    c.params = w.into_vec();
    c
}

fn parse_sized(params: &[u8], what: &'static str) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::new(params);
    let out = r.sized32(what)?.to_vec();
    r.finish(what)?;
    Ok(out)
}

pub fn parse_sign(params: &[u8]) -> Result<Vec<u8>, CodecError> {
    parse_sized(params, "Sign sig")
}

pub fn unbind(key: u32, data: &[u8]) -> Command {
    let mut c = Command::new(ord::UNBIND);
    c.handles = vec![key];
    let mut w = Writer::new();
    w.sized32(data);
    c.params = w.into_vec();
    c
}

pub fn parse_unbind(params: &[u8]) -> Result<Vec<u8>, CodecError> {
    parse_sized(params, "UnBind outData")
}

/// CreateWrapKey under `parent` in an OSAP session on the parent. The auth values are
/// ADIP-encrypted by the caller (see [`crate::codec::auth::adip_encrypt`]).
pub fn create_wrap_key(
    parent: u32,
    enc_usage_auth: &[u8; 20],
    enc_migration_auth: &[u8; 20],
    template: &Key12,
) -> Command {
    let mut c = Command::new(ord::CREATE_WRAP_KEY);
    c.handles = vec![parent];
    let mut w = Writer::new();
    w.bytes(enc_usage_auth).bytes(enc_migration_auth);
    template.encode(&mut w);
    c.params = w.into_vec();
    c
}

pub fn parse_create_wrap_key(params: &[u8]) -> Result<Key12, CodecError> {
    Key12::from_bytes(params)
}

/// SaveContext of a loaded key, with a 16-byte label.
pub fn save_context(handle: u32, resource_type: u32, label: &[u8; 16]) -> Command {
    let mut c = Command::new(ord::SAVE_CONTEXT);
    c.handles = vec![handle];
    let mut w = Writer::new();
    w.u32(resource_type).bytes(label);
    c.params = w.into_vec();
    c
}

pub fn parse_save_context(params: &[u8]) -> Result<Vec<u8>, CodecError> {
    parse_sized(params, "SaveContext contextBlob")
}

/// LoadContext: `entity_handle` is the handle to try to keep when `keep_handle`.
pub fn load_context(entity_handle: u32, keep_handle: bool, blob: &[u8]) -> Command {
    let mut c = Command::new(ord::LOAD_CONTEXT);
    let mut w = Writer::new();
    w.u32(entity_handle).bool(keep_handle).sized32(blob);
    c.params = w.into_vec();
    c.response_handles = 1;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_bytes() {
        let c = sign(0x0100_0000, &[0xAB; 3]);
        assert_eq!(
            c.encode(&[]),
            [0, 0xC1, 0, 0, 0, 21, 0, 0, 0, 0x3C, 1, 0, 0, 0, 0, 0, 0, 3, 0xAB, 0xAB, 0xAB]
        );
        // The handle is outside the digest: SHA-1(ordinal || areaToSignSize || areaToSign).
        let mut msg = vec![0, 0, 0, 0x3C, 0, 0, 0, 3];
        msg.extend([0xAB; 3]);
        assert_eq!(c.param_digest(), crate::codec::auth::sha1_parts(&[&msg]));
    }

    #[test]
    fn sized_parsers_reject_bad_lengths() {
        assert_eq!(parse_sign(&[0, 0, 0, 2, 1, 2]).unwrap(), vec![1, 2]);
        assert!(parse_sign(&[0, 0, 0, 3, 1, 2]).is_err());
        assert!(parse_sign(&[0, 0, 0, 1, 1, 2]).is_err());
        assert!(parse_unbind(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    }
}
