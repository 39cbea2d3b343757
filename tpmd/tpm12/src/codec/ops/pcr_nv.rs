//! TPM_PcrRead, TPM_Extend and TPM_NV_ReadValue.

use crate::codec::consts::ord;
use crate::codec::frame::Command;
use crate::codec::wire::{CodecError, Reader, Writer};

pub fn pcr_read(index: u32) -> Command {
    let mut c = Command::new(ord::PCR_READ);
    c.params = index.to_be_bytes().to_vec();
    c
}

/// The 20-byte PCR value (PcrRead and Extend answer the same way).
pub fn parse_pcr_value(params: &[u8]) -> Result<[u8; 20], CodecError> {
    let mut r = Reader::new(params);
    let out = r.array("PCR value")?;
    r.finish("PCR value")?;
    Ok(out)
}

pub fn extend(index: u32, digest: &[u8; 20]) -> Command {
    let mut c = Command::new(ord::EXTEND);
    let mut w = Writer::new();
    w.u32(index).bytes(digest);
    c.params = w.into_vec();
    c
}

/// NV_ReadValue without authorization (areas readable by anyone) or with owner auth.
pub fn nv_read_value(index: u32, offset: u32, size: u32) -> Command {
    let mut c = Command::new(ord::NV_READ_VALUE);
    let mut w = Writer::new();
    w.u32(index).u32(offset).u32(size);
    c.params = w.into_vec();
    c
}

pub fn parse_nv_read_value(params: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::new(params);
    let out = r.sized32("NV_ReadValue data")?.to_vec();
    r.finish("NV_ReadValue response")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_bytes() {
        assert_eq!(
            pcr_read(10).encode(&[]),
            [0, 0xC1, 0, 0, 0, 14, 0, 0, 0, 0x15, 0, 0, 0, 10]
        );
        assert_eq!(extend(1, &[0; 20]).encode(&[]).len(), 34);
        assert_eq!(parse_pcr_value(&[3; 20]).unwrap(), [3; 20]);
        assert!(parse_pcr_value(&[3; 19]).is_err());
        assert!(parse_pcr_value(&[3; 21]).is_err());
        assert_eq!(parse_nv_read_value(&[0, 0, 0, 1, 9]).unwrap(), [9]);
    }
}
