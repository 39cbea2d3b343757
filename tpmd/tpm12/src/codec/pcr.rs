//! PCR bindings of a key: TPM_PCR_INFO_LONG (TPM_KEY12) and TPM_PCR_INFO (TPM 1.1's
//! TPM_KEY), with TPM_PCR_SELECTION.

use sha1::{Digest, Sha1};

use super::wire::{CodecError, Reader, Writer};

/// TPM_TAG_PCR_INFO_LONG.
const TAG_PCR_INFO_LONG: u16 = 0x0006;

/// A PC Client TPM 1.2 has 24 PCRs: TPM_PCR_SELECTION's bitmap is three bytes.
pub const PCR_COUNT: u32 = 24;

/// TPM_LOCALITY_SELECTION of every locality (0 to 4).
const ANY_LOCALITY: u8 = 0x1F;
/// TPM_LOCALITY_SELECTION of locality 0, where software runs.
const LOCALITY_ZERO: u8 = 0x01;

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

    /// The selection of `pcrs` (each below [`PCR_COUNT`]), kept in ascending order, as
    /// the TPM reads PCR values for a composite.
    pub fn new(pcrs: &[u32]) -> Result<PcrSelection, CodecError> {
        if pcrs.iter().any(|pcr| *pcr >= PCR_COUNT) {
            return Err(CodecError::Invalid {
                what: "TPM_PCR_SELECTION",
                reason: "a TPM 1.2 has PCRs 0 to 23",
            });
        }
        let mut pcrs = pcrs.to_vec();
        pcrs.sort_unstable();
        pcrs.dedup();
        Ok(PcrSelection { pcrs })
    }

    fn bitmap(&self) -> [u8; (PCR_COUNT / 8) as usize] {
        let mut bitmap = [0u8; (PCR_COUNT / 8) as usize];
        for pcr in &self.pcrs {
            bitmap[(pcr / 8) as usize] |= 1 << (pcr % 8);
        }
        bitmap
    }

    pub fn encode(&self, w: &mut Writer) {
        let bitmap = self.bitmap();
        w.u16(bitmap.len() as u16).bytes(&bitmap);
    }

    /// TPM_COMPOSITE_HASH: SHA-1 of the TPM_PCR_COMPOSITE of this selection with
    /// `values`, one per selected PCR in ascending order.
    pub fn composite_hash(&self, values: &[[u8; 20]]) -> Result<[u8; 20], CodecError> {
        if values.len() != self.pcrs.len() {
            return Err(CodecError::Invalid {
                what: "TPM_PCR_COMPOSITE",
                reason: "one value per selected PCR is needed",
            });
        }
        let mut w = Writer::new();
        self.encode(&mut w);
        w.u32(20 * values.len() as u32);
        for value in values {
            w.bytes(value);
        }
        Ok(Sha1::digest(w.as_slice()).into())
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

impl PcrInfo {
    /// The TPM_PCR_INFO_LONG of a key usable only while the PCRs of `release` hold the
    /// values whose composite hash is `digest_at_release`, from any locality. (The TPM
    /// fills in the creation fields of a key it makes; a wrapped key carries none.)
    pub fn encode_long(release: &PcrSelection, digest_at_release: &[u8; 20]) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(TAG_PCR_INFO_LONG).u8(LOCALITY_ZERO).u8(ANY_LOCALITY);
        PcrSelection::default().encode(&mut w);
        release.encode(&mut w);
        w.bytes(&[0u8; 20]).bytes(digest_at_release);
        w.into_vec()
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

    #[test]
    fn pcr_info_long_round_trips() {
        let release = PcrSelection::new(&[16, 0, 7, 7]).unwrap();
        assert_eq!(release.pcrs, vec![0, 7, 16]);
        let bytes = PcrInfo::encode_long(&release, &[9; 20]);
        let info = PcrInfo::decode(&bytes, true).unwrap();
        assert_eq!(info.release, release);
        assert_eq!(info.digest_at_release, [9; 20]);
        assert_eq!(info.locality_at_release, Some(ANY_LOCALITY));
        assert!(PcrSelection::new(&[24]).is_err());
    }

    #[test]
    fn composite_hash_is_sha1_of_the_pcr_composite() {
        // TPM_PCR_COMPOSITE of PCR 16 holding zeros: select {size 3, 00 00 01},
        // valueSize 20, the value.
        let selection = PcrSelection::new(&[16]).unwrap();
        let mut composite = vec![0, 3, 0, 0, 1, 0, 0, 0, 20];
        composite.extend([0u8; 20]);
        let want: [u8; 20] = Sha1::digest(&composite).into();
        assert_eq!(selection.composite_hash(&[[0; 20]]).unwrap(), want);
        assert!(selection.composite_hash(&[]).is_err());
    }
}
