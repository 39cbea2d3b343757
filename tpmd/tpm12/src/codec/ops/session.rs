//! TPM_Startup, TPM_OIAP, TPM_OSAP, TPM_FlushSpecific, TPM_GetRandom.

use crate::codec::auth::Nonce;
use crate::codec::consts::{ord, rt};
use crate::codec::frame::Command;
use crate::codec::wire::{CodecError, Reader, Writer};

pub fn startup(kind: u16) -> Command {
    let mut c = Command::new(ord::STARTUP);
    c.params = kind.to_be_bytes().to_vec();
    c
}

pub fn oiap() -> Command {
    Command::new(ord::OIAP)
}

/// An open OIAP session as the TPM reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OiapOut {
    pub handle: u32,
    pub nonce_even: Nonce,
}

pub fn parse_oiap(params: &[u8]) -> Result<OiapOut, CodecError> {
    let mut r = Reader::new(params);
    let out = OiapOut {
        handle: r.u32("OIAP authHandle")?,
        nonce_even: r.array("OIAP nonceEven")?,
    };
    r.finish("OIAP response")?;
    Ok(out)
}

pub fn osap(entity_type: u16, entity_value: u32, nonce_odd_osap: &Nonce) -> Command {
    let mut c = Command::new(ord::OSAP);
    let mut w = Writer::new();
    w.u16(entity_type).u32(entity_value).bytes(nonce_odd_osap);
    c.params = w.into_vec();
    c
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsapOut {
    pub handle: u32,
    pub nonce_even: Nonce,
    pub nonce_even_osap: Nonce,
}

pub fn parse_osap(params: &[u8]) -> Result<OsapOut, CodecError> {
    let mut r = Reader::new(params);
    let out = OsapOut {
        handle: r.u32("OSAP authHandle")?,
        nonce_even: r.array("OSAP nonceEven")?,
        nonce_even_osap: r.array("OSAP nonceEvenOSAP")?,
    };
    r.finish("OSAP response")?;
    Ok(out)
}

pub fn flush_specific(handle: u32, resource_type: u32) -> Command {
    let mut c = Command::new(ord::FLUSH_SPECIFIC);
    c.handles = vec![handle];
    c.params = resource_type.to_be_bytes().to_vec();
    c
}

pub fn flush_key(handle: u32) -> Command {
    flush_specific(handle, rt::KEY)
}

pub fn flush_auth(handle: u32) -> Command {
    flush_specific(handle, rt::AUTH)
}

pub fn get_random(bytes: u32) -> Command {
    let mut c = Command::new(ord::GET_RANDOM);
    c.params = bytes.to_be_bytes().to_vec();
    c
}

pub fn parse_get_random(params: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::new(params);
    let out = r.sized32("GetRandom randomBytes")?.to_vec();
    r.finish("GetRandom response")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oiap_and_osap_bytes() {
        assert_eq!(oiap().encode(&[]), [0, 0xC1, 0, 0, 0, 10, 0, 0, 0, 0x0A]);
        let cmd = osap(0x0001, 0x4000_0000, &[0xAA; 20]).encode(&[]);
        assert_eq!(&cmd[..10], &[0, 0xC1, 0, 0, 0, 36, 0, 0, 0, 0x0B]);
        assert_eq!(&cmd[10..16], &[0, 1, 0x40, 0, 0, 0]);
        let mut resp = vec![0, 0, 0, 5];
        resp.extend([1; 20]);
        resp.extend([2; 20]);
        let out = parse_osap(&resp).unwrap();
        assert_eq!(out.handle, 5);
        assert_eq!(out.nonce_even_osap, [2; 20]);
        assert!(parse_osap(&resp[..40]).is_err());
        assert!(parse_oiap(&resp).is_err());
        assert_eq!(parse_oiap(&resp[..24]).unwrap().nonce_even, [1; 20]);
    }

    #[test]
    fn flush_specific_bytes() {
        assert_eq!(
            flush_key(0x0100_0001).encode(&[]),
            [0, 0xC1, 0, 0, 0, 18, 0, 0, 0, 0xBA, 1, 0, 0, 1, 0, 0, 0, 1]
        );
    }
}
