//! TPM_GetCapability and the structures it returns.

use crate::codec::consts::{cap, ord, stag};
use crate::codec::frame::Command;
use crate::codec::wire::{CodecError, Reader, Writer};

pub fn get_capability(area: u32, sub_cap: &[u8]) -> Command {
    let mut c = Command::new(ord::GET_CAPABILITY);
    let mut w = Writer::new();
    w.u32(area).sized32(sub_cap);
    c.params = w.into_vec();
    c
}

/// GetCapability(TPM_CAP_PROPERTY, prop).
pub fn get_property(prop: u32) -> Command {
    get_capability(cap::PROPERTY, &prop.to_be_bytes())
}

pub fn get_version() -> Command {
    get_capability(cap::VERSION_VAL, &[])
}

pub fn get_key_handles() -> Command {
    get_capability(cap::KEY_HANDLE, &[])
}

/// GetCapability(TPM_CAP_HANDLE, resource type): the handles of that type the TPM holds,
/// answered as a TPM_KEY_HANDLE_LIST ([`parse_key_handles`]).
pub fn get_handles(resource_type: u32) -> Command {
    get_capability(cap::HANDLE, &resource_type.to_be_bytes())
}

pub fn get_nv_list() -> Command {
    get_capability(cap::NV_LIST, &[])
}

pub fn get_permanent_flags() -> Command {
    get_capability(cap::FLAG, &cap::FLAG_PERMANENT.to_be_bytes())
}

/// Dictionary-attack state for an entity type (TPM_ET_KEYHANDLE is what key auth uses).
pub fn get_da_logic(entity_type: u16) -> Command {
    get_capability(cap::DA_LOGIC, &entity_type.to_be_bytes())
}

/// The capability response bytes (respSize, resp).
pub fn parse_capability(params: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::new(params);
    let out = r.sized32("GetCapability resp")?.to_vec();
    r.finish("GetCapability response")?;
    Ok(out)
}

pub fn parse_u32(resp: &[u8]) -> Result<u32, CodecError> {
    let mut r = Reader::new(resp);
    let v = r.u32("capability value")?;
    r.finish("capability value")?;
    Ok(v)
}

pub fn parse_bool(resp: &[u8]) -> Result<bool, CodecError> {
    let mut r = Reader::new(resp);
    let v = r.bool("capability flag")?;
    r.finish("capability flag")?;
    Ok(v)
}

/// TPM_CAP_VERSION_INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// major, minor, revMajor, revMinor.
    pub version: [u8; 4],
    pub spec_level: u16,
    pub errata_rev: u8,
    /// Four ASCII characters, e.g. "IBM " for libtpms.
    pub vendor_id: [u8; 4],
    pub vendor_specific: Vec<u8>,
}

impl VersionInfo {
    /// The vendor id as text, trailing spaces and NULs trimmed.
    pub fn vendor(&self) -> String {
        String::from_utf8_lossy(&self.vendor_id)
            .trim_end_matches([' ', '\0'])
            .to_string()
    }

    /// "1.2" and the firmware revision.
    pub fn describe(&self) -> String {
        format!(
            "TPM {}.{} rev {}.{} spec level {} errata {} vendor {}",
            self.version[0],
            self.version[1],
            self.version[2],
            self.version[3],
            self.spec_level,
            self.errata_rev,
            self.vendor()
        )
    }
}

pub fn parse_version_info(resp: &[u8]) -> Result<VersionInfo, CodecError> {
    let mut r = Reader::new(resp);
    if r.u16("TPM_CAP_VERSION_INFO.tag")? != stag::CAP_VERSION_INFO {
        return Err(CodecError::Invalid {
            what: "TPM_CAP_VERSION_INFO",
            reason: "wrong structure tag",
        });
    }
    let info = VersionInfo {
        version: r.array("TPM_CAP_VERSION_INFO.version")?,
        spec_level: r.u16("TPM_CAP_VERSION_INFO.specLevel")?,
        errata_rev: r.u8("TPM_CAP_VERSION_INFO.errataRev")?,
        vendor_id: r.array("TPM_CAP_VERSION_INFO.tpmVendorID")?,
        vendor_specific: r.sized16("TPM_CAP_VERSION_INFO.vendorSpecific")?.to_vec(),
    };
    r.finish("TPM_CAP_VERSION_INFO")?;
    Ok(info)
}

/// TPM_KEY_HANDLE_LIST (the answer to TPM_CAP_KEY_HANDLE and TPM_CAP_HANDLE).
pub fn parse_key_handles(resp: &[u8]) -> Result<Vec<u32>, CodecError> {
    let mut r = Reader::new(resp);
    let n = r.u16("TPM_KEY_HANDLE_LIST.loaded")?;
    let handles = (0..n)
        .map(|_| r.u32("TPM_KEY_HANDLE_LIST.handle"))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish("TPM_KEY_HANDLE_LIST")?;
    Ok(handles)
}

/// The NV index list: a packed array of 32-bit indices.
pub fn parse_nv_list(resp: &[u8]) -> Result<Vec<u32>, CodecError> {
    if !resp.len().is_multiple_of(4) {
        return Err(CodecError::Invalid {
            what: "NV index list",
            reason: "length is not a multiple of 4",
        });
    }
    Ok(resp
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The TPM_PERMANENT_FLAGS a tool cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermanentFlags {
    pub disable: bool,
    pub ownership: bool,
    pub deactivated: bool,
    pub read_pubek: bool,
    /// NV is locked: TPM_NV_INDEX_LOCK has been defined.
    pub nv_locked: bool,
    /// The SRK public key is readable without owner auth (`tpm_restrictsrk -a`).
    pub read_srk_pub: bool,
}

pub fn parse_permanent_flags(resp: &[u8]) -> Result<PermanentFlags, CodecError> {
    let mut r = Reader::new(resp);
    if r.u16("TPM_PERMANENT_FLAGS.tag")? != stag::PERMANENT_FLAGS {
        return Err(CodecError::Invalid {
            what: "TPM_PERMANENT_FLAGS",
            reason: "wrong structure tag",
        });
    }
    // Booleans in the order of Part 2, 7.1; later versions append more.
    let flags = r.take(17, "TPM_PERMANENT_FLAGS")?;
    let flag = |i: usize| flags[i] != 0;
    Ok(PermanentFlags {
        disable: flag(0),
        ownership: flag(1),
        deactivated: flag(2),
        read_pubek: flag(3),
        nv_locked: flag(15),
        read_srk_pub: flag(16),
    })
}

/// TPM_DA_INFO or TPM_DA_INFO_LIMITED (the latter has no counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaInfo {
    /// TPM_DA_STATE_ACTIVE: the TPM is refusing auth attempts.
    pub active: bool,
    pub current_count: Option<u16>,
    pub threshold: Option<u16>,
    /// Seconds until the lockout ends (actionDependValue), if reported.
    pub action_depend_value: Option<u32>,
}

pub fn parse_da_info(resp: &[u8]) -> Result<DaInfo, CodecError> {
    let mut r = Reader::new(resp);
    let tag = r.u16("TPM_DA_INFO.tag")?;
    let active = r.u8("TPM_DA_INFO.state")? != 0;
    let info = match tag {
        stag::DA_INFO => {
            let current = r.u16("TPM_DA_INFO.currentCount")?;
            let threshold = r.u16("TPM_DA_INFO.thresholdCount")?;
            parse_da_action(&mut r)?;
            let depend = r.u32("TPM_DA_INFO.actionDependValue")?;
            DaInfo {
                active,
                current_count: Some(current),
                threshold: Some(threshold),
                action_depend_value: Some(depend),
            }
        }
        stag::DA_INFO_LIMITED => {
            parse_da_action(&mut r)?;
            DaInfo {
                active,
                current_count: None,
                threshold: None,
                action_depend_value: None,
            }
        }
        _ => {
            return Err(CodecError::Invalid {
                what: "TPM_DA_INFO",
                reason: "wrong structure tag",
            })
        }
    };
    r.sized32("TPM_DA_INFO.vendorData")?;
    r.finish("TPM_DA_INFO")?;
    Ok(info)
}

fn parse_da_action(r: &mut Reader<'_>) -> Result<u32, CodecError> {
    if r.u16("TPM_DA_ACTION_TYPE.tag")? != stag::DA_ACTION_TYPE {
        return Err(CodecError::Invalid {
            what: "TPM_DA_ACTION_TYPE",
            reason: "wrong structure tag",
        });
    }
    r.u32("TPM_DA_ACTION_TYPE.actions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_info() {
        let resp = [0x00, 0x30, 1, 2, 0, 0, 0, 2, 3, b'I', b'B', b'M', 0, 0, 0];
        let v = parse_version_info(&resp).unwrap();
        assert_eq!(v.version, [1, 2, 0, 0]);
        assert_eq!(v.spec_level, 2);
        assert_eq!(v.errata_rev, 3);
        assert_eq!(v.vendor(), "IBM");
        for cut in 0..resp.len() {
            assert!(parse_version_info(&resp[..cut]).is_err());
        }
    }

    #[test]
    fn capability_request_bytes() {
        // GetCapability(TPM_CAP_PROPERTY, TPM_CAP_PROP_KEYS)
        assert_eq!(
            get_property(cap::PROP_KEYS).encode(&[]),
            [0, 0xC1, 0, 0, 0, 22, 0, 0, 0, 0x65, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 1, 4]
        );
    }

    #[test]
    fn lists_and_flags() {
        assert_eq!(
            parse_key_handles(&[0, 2, 1, 0, 0, 0, 1, 0, 0, 1]).unwrap(),
            vec![0x0100_0000, 0x0100_0001]
        );
        assert!(parse_key_handles(&[0, 2, 1, 0, 0, 0]).is_err());
        assert_eq!(
            parse_nv_list(&[0, 0, 0, 1, 0x10, 0, 0xF0, 0]).unwrap(),
            vec![1, 0x1000_F000]
        );
        assert!(parse_nv_list(&[0, 0, 1]).is_err());
        let mut flags = vec![0x00, 0x1F];
        flags.extend([0u8; 20]);
        flags[2 + 1] = 1;
        flags[2 + 15] = 1;
        let f = parse_permanent_flags(&flags).unwrap();
        assert!(f.ownership && f.nv_locked && !f.read_srk_pub);
    }

    #[test]
    fn da_info() {
        let full = [
            0x00, 0x37, 1, 0, 3, 0, 10, 0x00, 0x39, 0, 0, 0, 2, 0, 0, 0, 60, 0, 0, 0, 0,
        ];
        let info = parse_da_info(&full).unwrap();
        assert!(info.active);
        assert_eq!(info.current_count, Some(3));
        assert_eq!(info.threshold, Some(10));
        assert_eq!(info.action_depend_value, Some(60));
        let limited = [0x00, 0x38, 0, 0x00, 0x39, 0, 0, 0, 2, 0, 0, 0, 0];
        assert!(!parse_da_info(&limited).unwrap().active);
        for cut in 0..full.len() {
            assert!(parse_da_info(&full[..cut]).is_err());
        }
    }
}
