//! TPM2_GetCapability and the capabilities tpmd reads.

use tpmd_api::marshal::put_u32;

use crate::wire::{cc, Command, Response, WireError};

pub const CAP_ALGS: u32 = 0;
pub const CAP_HANDLES: u32 = 1;
pub const CAP_COMMANDS: u32 = 2;
pub const CAP_PCRS: u32 = 5;
pub const CAP_TPM_PROPERTIES: u32 = 6;

/// TPM_PT values tpmd reads.
pub mod pt {
    pub const MANUFACTURER: u32 = 0x105;
    pub const VENDOR_STRING_1: u32 = 0x106;
    pub const FIRMWARE_VERSION_1: u32 = 0x10B;
    pub const FIRMWARE_VERSION_2: u32 = 0x10C;
    pub const HR_TRANSIENT_MIN: u32 = 0x10E;
    pub const ACTIVE_SESSIONS_MAX: u32 = 0x111;
    pub const PERMANENT: u32 = 0x200;
    pub const HR_LOADED: u32 = 0x203;
    pub const HR_TRANSIENT_AVAIL: u32 = 0x207;
    pub const LOCKOUT_COUNTER: u32 = 0x20E;
    pub const MAX_AUTH_FAIL: u32 = 0x20F;
    pub const LOCKOUT_INTERVAL: u32 = 0x210;
    pub const LOCKOUT_RECOVERY: u32 = 0x211;
}

/// TPMA_PERMANENT.inLockout.
pub const PERMANENT_IN_LOCKOUT: u32 = 1 << 9;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapabilityData {
    Algorithms(Vec<(u16, u32)>),
    Handles(Vec<u32>),
    /// TPMA_CC of each command: the command code in the low 16 bits, cHandles in bits
    /// 25..28, rHandle in bit 28.
    Commands(Vec<u32>),
    Properties(Vec<(u32, u32)>),
    /// A capability tpmd does not parse.
    Other(u32),
}

pub fn get_capability(capability: u32, property: u32, count: u32) -> Command {
    let mut cmd = Command::new(cc::GET_CAPABILITY, &[], 0, 0);
    put_u32(&mut cmd.params, capability);
    put_u32(&mut cmd.params, property);
    put_u32(&mut cmd.params, count);
    cmd
}

/// Whether more data is available, and the data.
pub fn parse_capability(response: &Response) -> Result<(bool, CapabilityData), WireError> {
    let mut r = response.reader();
    let more = r.read_u8("moreData")? != 0;
    let capability = r.read_u32("capability")?;
    let count = |r: &mut tpmd_api::marshal::Reader<'_>, each: usize| -> Result<usize, WireError> {
        let n = r.read_u32("count")? as usize;
        if n.saturating_mul(each) > r.remaining() {
            return Err(WireError::Layout(
                "capability list longer than the response",
            ));
        }
        Ok(n)
    };
    let data = match capability {
        CAP_ALGS => {
            let n = count(&mut r, 6)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push((r.read_u16("alg")?, r.read_u32("algProperties")?));
            }
            CapabilityData::Algorithms(list)
        }
        CAP_HANDLES => {
            let n = count(&mut r, 4)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(r.read_u32("handle")?);
            }
            CapabilityData::Handles(list)
        }
        CAP_COMMANDS => {
            let n = count(&mut r, 4)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(r.read_u32("TPMA_CC")?);
            }
            CapabilityData::Commands(list)
        }
        CAP_TPM_PROPERTIES => {
            let n = count(&mut r, 8)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push((r.read_u32("property")?, r.read_u32("value")?));
            }
            CapabilityData::Properties(list)
        }
        other => return Ok((more, CapabilityData::Other(other))),
    };
    r.finish("capability data")?;
    Ok((more, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(params: &[u8]) -> Response {
        Response {
            code: cc::GET_CAPABILITY,
            rc: 0,
            handles: vec![],
            params: params.to_vec(),
            auths: vec![],
        }
    }

    #[test]
    fn parses_handles_and_properties() {
        let r = response(&[
            0, 0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0xFF, 0xFF, 0xFF, 0x80, 0xFF, 0xFF, 0xFE,
        ]);
        assert_eq!(
            parse_capability(&r).unwrap(),
            (
                false,
                CapabilityData::Handles(vec![0x80FF_FFFF, 0x80FF_FFFE])
            )
        );
        let r = response(&[1, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 2, 0x0E, 0, 0, 0, 3]);
        assert_eq!(
            parse_capability(&r).unwrap(),
            (
                true,
                CapabilityData::Properties(vec![(pt::LOCKOUT_COUNTER, 3)])
            )
        );
    }

    #[test]
    fn a_count_beyond_the_data_is_an_error() {
        let r = response(&[0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(parse_capability(&r).is_err());
    }
}
