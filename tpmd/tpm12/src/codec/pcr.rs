//! PCR bindings of a key: TPM_PCR_INFO_LONG (TPM_KEY12) and TPM_PCR_INFO (TPM 1.1's
//! TPM_KEY), with TPM_PCR_SELECTION.

use super::wire::{CodecError, Reader};

/// TPM_TAG_PCR_INFO_LONG.
const TAG_PCR_INFO_LONG: u16 = 0x0006;

/// TPM_PCR_SELECTION as the indices it selects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcrSelection {
    pub pcrs: Vec<u32>,
}

impl PcrSelection {
    pub fn decode(r: &mut Reader<'_>) -> Result<PcrSelection, CodecError> {
        let bitmap = r.sized16("TPM_PCR_SELECTION.pcrSelect")?;
        let pcrs = bitmap
            .iter()
            .enumerate()
            .flat_map(|(byte, bits)| {
                (0..8u32)
                    .filter(move |bit| bits & (1 << bit) != 0)
                    .map(move |bit| byte as u32 * 8 + bit)
            })
            .collect();
        Ok(PcrSelection { pcrs })
    }
}

/// What a key's PCR info says: the PCRs (and localities) it may be used under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrInfo {
    /// Locality bitmap required for use (TPM_PCR_INFO_LONG only; 0x1F = any).
    pub locality_at_release: Option<u8>,
    pub release: PcrSelection,
    pub digest_at_release: [u8; 20],
}

impl PcrInfo {
    /// Parses the PCRInfo field of a key: `long` for TPM_KEY12, else TPM_KEY's TPM_PCR_INFO.
    pub fn decode(data: &[u8], long: bool) -> Result<PcrInfo, CodecError> {
        let mut r = Reader::new(data);
        let info = if long {
            if r.u16("TPM_PCR_INFO_LONG.tag")? != TAG_PCR_INFO_LONG {
                return Err(CodecError::Invalid {
                    what: "TPM_PCR_INFO_LONG",
                    reason: "wrong structure tag",
                });
            }
            let _creation_locality = r.u8("TPM_PCR_INFO_LONG.localityAtCreation")?;
            let release_locality = r.u8("TPM_PCR_INFO_LONG.localityAtRelease")?;
            let _creation = PcrSelection::decode(&mut r)?;
            let release = PcrSelection::decode(&mut r)?;
            let _digest_at_creation: [u8; 20] = r.array("TPM_PCR_INFO_LONG.digestAtCreation")?;
            PcrInfo {
                locality_at_release: Some(release_locality),
                release,
                digest_at_release: r.array("TPM_PCR_INFO_LONG.digestAtRelease")?,
            }
        } else {
            let release = PcrSelection::decode(&mut r)?;
            let digest_at_release = r.array("TPM_PCR_INFO.digestAtRelease")?;
            let _digest_at_creation: [u8; 20] = r.array("TPM_PCR_INFO.digestAtCreation")?;
            PcrInfo {
                locality_at_release: None,
                release,
                digest_at_release,
            }
        };
        r.finish("PCR info")?;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_info_long_and_short() {
        let mut long = vec![
            0x00, 0x06, 0x01, 0x1F, 0, 3, 0, 0, 0, 0, 3, 0x81, 0x00, 0x01,
        ];
        long.extend([1u8; 20]);
        long.extend([2u8; 20]);
        let info = PcrInfo::decode(&long, true).unwrap();
        assert_eq!(info.release.pcrs, vec![0, 7, 16]);
        assert_eq!(info.locality_at_release, Some(0x1F));
        assert_eq!(info.digest_at_release, [2; 20]);
        for cut in 0..long.len() {
            assert!(PcrInfo::decode(&long[..cut], true).is_err());
        }
        let mut short = vec![0, 2, 0x00, 0x04];
        short.extend([3u8; 20]);
        short.extend([4u8; 20]);
        let info = PcrInfo::decode(&short, false).unwrap();
        assert_eq!(info.release.pcrs, vec![10]);
        assert_eq!(info.digest_at_release, [3; 20]);
    }
}
