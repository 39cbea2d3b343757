//! TPM_ReadPubek, TPM_OwnerReadInternalPub, TPM_TakeOwnership and TPM_SetCapability.

use crate::codec::auth::{sha1_parts, Nonce};
use crate::codec::consts::{ord, set_cap, PID_OWNER};
use crate::codec::frame::Command;
use crate::codec::key::{Key12, PubKey};
use crate::codec::wire::{CodecError, Reader, Writer};

pub fn read_pubek(anti_replay: &Nonce) -> Command {
    let mut c = Command::new(ord::READ_PUBEK);
    c.params = anti_replay.to_vec();
    c
}

/// The EK public key, after checking checksum = SHA-1(TPM_PUBKEY || antiReplay).
pub fn parse_read_pubek(params: &[u8], anti_replay: &Nonce) -> Result<PubKey, CodecError> {
    let mut r = Reader::new(params);
    let key = PubKey::decode(&mut r)?;
    let key_len = r.position();
    let checksum: [u8; 20] = r.array("ReadPubek checksum")?;
    r.finish("ReadPubek response")?;
    if sha1_parts(&[&params[..key_len], anti_replay]) != checksum {
        return Err(CodecError::Invalid {
            what: "ReadPubek response",
            reason: "the checksum does not match the key and our nonce",
        });
    }
    Ok(key)
}

/// OwnerReadInternalPub of the SRK or EK (auth: the owner). The handle is a parameter
/// here, covered by the HMAC.
pub fn owner_read_internal_pub(key_handle: u32) -> Command {
    let mut c = Command::new(ord::OWNER_READ_INTERNAL_PUB);
    c.params = key_handle.to_be_bytes().to_vec();
    c
}

pub fn parse_owner_read_internal_pub(params: &[u8]) -> Result<PubKey, CodecError> {
    PubKey::from_bytes(params)
}

/// TakeOwnership with the owner and SRK auth values already encrypted to the EK
/// (RSA-OAEP SHA-1, label "TCPA"); auth: an OIAP session keyed with the new owner auth.
pub fn take_ownership(enc_owner_auth: &[u8], enc_srk_auth: &[u8], srk_params: &Key12) -> Command {
    let mut c = Command::new(ord::TAKE_OWNERSHIP);
    let mut w = Writer::new();
    w.u16(PID_OWNER)
        .sized32(enc_owner_auth)
        .sized32(enc_srk_auth);
    srk_params.encode(&mut w);
    c.params = w.into_vec();
    c
}

pub fn parse_take_ownership(params: &[u8]) -> Result<Key12, CodecError> {
    Key12::from_bytes(params)
}

/// TPM_SetCapability(TPM_SET_PERM_FLAGS, TPM_PF_READSRKPUB, value) (auth: the owner):
/// what `tpm_restrictsrk -a` does.
pub fn set_read_srk_pub(allow: bool) -> Command {
    let mut c = Command::new(ord::SET_CAPABILITY);
    let mut w = Writer::new();
    w.u32(set_cap::PERM_FLAGS)
        .sized32(&set_cap::PF_READSRKPUB.to_be_bytes())
        .sized32(&[u8::from(allow)]);
    c.params = w.into_vec();
    c
}

/// TPM_ResetLockValue (auth: the owner): ends a dictionary-attack lockout and resets the
/// failure counter, what `tpm_resetdalock` does.
pub fn reset_lock_value() -> Command {
    Command::new(ord::RESET_LOCK_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::consts::alg;
    use crate::codec::key::KeyParms;

    #[test]
    fn read_pubek_checks_the_checksum() {
        let key = PubKey {
            parms: KeyParms::rsa(2048, alg::ES_RSAESOAEP_SHA1_MGF1, alg::SS_NONE),
            modulus: vec![0xC0; 4],
        };
        let nonce = [7; 20];
        let mut params = key.to_bytes();
        let sum = sha1_parts(&[&params, &nonce]);
        params.extend(sum);
        assert_eq!(parse_read_pubek(&params, &nonce).unwrap(), key);
        assert!(parse_read_pubek(&params, &[8; 20]).is_err());
        for cut in 0..params.len() {
            assert!(parse_read_pubek(&params[..cut], &nonce).is_err());
        }
    }

    #[test]
    fn set_read_srk_pub_bytes() {
        assert_eq!(
            set_read_srk_pub(true).params,
            [0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 17, 0, 0, 0, 1, 1]
        );
    }
}
