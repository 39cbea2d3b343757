//! TPM_PcrRead, TPM_Extend and TPM_NV_ReadValue.

use crate::codec::consts::{ord, stag, NV_INDEX_LOCK};
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

/// TPM_NV_DefineSpace of TPM_NV_INDEX_LOCK (size 0), sent without authorization: sets
/// TPM_PERMANENT_FLAGS.nvLocked so NV access control is enforced from then on (what
/// `tpm_nvdefine -i 0xFFFFFFFF -s 0` does). Irreversible short of a TPM clear.
pub fn nv_define_lock() -> Command {
    let mut c = Command::new(ord::NV_DEFINE_SPACE);
    let mut w = Writer::new();
    w.u16(stag::NV_DATA_PUBLIC).u32(NV_INDEX_LOCK);
    // pcrInfoRead and pcrInfoWrite: TPM_PCR_INFO_SHORT selecting no PCR, any locality.
    for _ in 0..2 {
        w.u16(3).bytes(&[0, 0, 0]).u8(0x1F).bytes(&[0; 20]);
    }
    w.u16(stag::NV_ATTRIBUTES).u32(0);
    // bReadSTClear, bWriteSTClear, bWriteDefine, dataSize, encAuth.
    w.bool(false).bool(false).bool(false).u32(0).bytes(&[0; 20]);
    c.params = w.into_vec();
    c
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
        // TPM_NV_DATA_PUBLIC (2 + 4 + 2 * 26 + 6 + 3 + 4) and encAuth (20).
        let lock = nv_define_lock();
        assert_eq!(lock.params.len(), 71 + 20);
        assert_eq!(&lock.params[..6], &[0, 0x18, 0xFF, 0xFF, 0xFF, 0xFF]);
    }
}
