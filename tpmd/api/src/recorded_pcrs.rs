//! The PCR values a key was bound to, recorded in its key file's `description` when they
//! were known: a policy digest alone cannot say which PCR changed, these values can.
//!
//! One line of the description, banks separated by `;`:
//!
//! ```text
//! tpmd-pcr-values: sha256:0=3d45…,2=ab12…;sha1:7=00…
//! ```
//!
//! The description is not integrity-protected: the values only explain a failure, the
//! TPM alone decides whether the key may be used.

use crate::marshal::{digest_size, TPM_ALG_SHA1, TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512};

/// What starts the line in the description.
pub const RECORDED_PREFIX: &str = "tpmd-pcr-values:";

/// The recorded values of one PCR bank, in PCR order as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedBank {
    pub hash_alg: u16,
    /// (PCR index, value)
    pub values: Vec<(u8, Vec<u8>)>,
}

impl RecordedBank {
    /// The recorded value of `pcr`, if any.
    pub fn value(&self, pcr: u8) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(index, _)| *index == pcr)
            .map(|(_, value)| value.as_slice())
    }
}

fn bank_name(hash_alg: u16) -> Option<&'static str> {
    match hash_alg {
        TPM_ALG_SHA1 => Some("sha1"),
        TPM_ALG_SHA256 => Some("sha256"),
        TPM_ALG_SHA384 => Some("sha384"),
        TPM_ALG_SHA512 => Some("sha512"),
        _ => None,
    }
}

fn bank_alg(name: &str) -> Option<u16> {
    match name {
        "sha1" => Some(TPM_ALG_SHA1),
        "sha256" => Some(TPM_ALG_SHA256),
        "sha384" => Some(TPM_ALG_SHA384),
        "sha512" => Some(TPM_ALG_SHA512),
        _ => None,
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The description line for `banks` (without a line break). Banks of an algorithm tpmd
/// does not name are left out.
pub fn format_recorded_values(banks: &[RecordedBank]) -> String {
    let text = banks
        .iter()
        .filter_map(|bank| {
            let name = bank_name(bank.hash_alg)?;
            let values = bank
                .values
                .iter()
                .map(|(pcr, value)| format!("{pcr}={}", to_hex(value)))
                .collect::<Vec<_>>()
                .join(",");
            Some(format!("{name}:{values}"))
        })
        .collect::<Vec<_>>()
        .join(";");
    format!("{RECORDED_PREFIX} {text}")
}

/// `description` with its recorded-values line replaced by (or, if it has none, followed
/// by) the line for `banks`; the other lines are kept as they were.
pub fn with_recorded_values(description: Option<&str>, banks: &[RecordedBank]) -> String {
    let mut lines: Vec<String> = description
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim_start().starts_with(RECORDED_PREFIX))
        .map(str::to_string)
        .collect();
    lines.push(format_recorded_values(banks));
    lines.join("\n")
}

/// The recorded values in a key file's description: `None` if it has no such line, an
/// error naming what is wrong if the line is malformed.
pub fn parse_recorded_values(description: &str) -> Result<Option<Vec<RecordedBank>>, String> {
    let Some(line) = description
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(RECORDED_PREFIX))
    else {
        return Ok(None);
    };
    let text = line[RECORDED_PREFIX.len()..].trim();
    if text.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let mut banks = Vec::new();
    for bank in text.split(';').map(str::trim).filter(|b| !b.is_empty()) {
        let (name, list) = bank
            .split_once(':')
            .ok_or_else(|| format!("recorded PCR values {bank:?}: expected BANK:PCR=HEX,..."))?;
        let hash_alg = bank_alg(name.trim())
            .ok_or_else(|| format!("recorded PCR values: {name:?} is not a PCR bank"))?;
        let size = digest_size(hash_alg).unwrap_or_default();
        let mut values = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (pcr, hex) = item
                .split_once('=')
                .ok_or_else(|| format!("recorded PCR values {item:?}: expected PCR=HEX"))?;
            let pcr = pcr
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n < 24)
                .ok_or_else(|| format!("recorded PCR values: {pcr:?} is not a PCR from 0 to 23"))?;
            let value = from_hex(hex.trim())
                .filter(|v| v.len() == size)
                .ok_or_else(|| {
                    format!("recorded PCR values: the {name} value of PCR {pcr} is not {size} bytes of hex")
                })?;
            values.push((pcr, value));
        }
        banks.push(RecordedBank { hash_alg, values });
    }
    Ok(Some(banks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn banks() -> Vec<RecordedBank> {
        vec![
            RecordedBank {
                hash_alg: TPM_ALG_SHA256,
                values: vec![(0, vec![0x3d; 32]), (16, vec![0; 32])],
            },
            RecordedBank {
                hash_alg: TPM_ALG_SHA1,
                values: vec![(7, vec![0xab; 20])],
            },
        ]
    }

    #[test]
    fn values_round_trip_through_a_description() {
        let line = format_recorded_values(&banks());
        assert!(line.starts_with("tpmd-pcr-values: sha256:0=3d3d"), "{line}");
        assert!(line.contains(";sha1:7=abab"), "{line}");
        let description = with_recorded_values(Some("laptop key\nkernel 6.12"), &banks());
        assert_eq!(description.lines().next(), Some("laptop key"));
        assert_eq!(parse_recorded_values(&description).unwrap(), Some(banks()));
        // Recording again replaces the line instead of adding a second one.
        let again = with_recorded_values(Some(&description), &banks()[..1]);
        assert_eq!(again.matches(RECORDED_PREFIX).count(), 1);
        assert_eq!(
            parse_recorded_values(&again).unwrap(),
            Some(banks()[..1].to_vec())
        );
        assert_eq!(banks()[0].value(16), Some(&[0u8; 32][..]));
        assert_eq!(banks()[0].value(1), None);
    }

    #[test]
    fn descriptions_without_values_or_with_bad_ones() {
        assert_eq!(parse_recorded_values("just a name").unwrap(), None);
        assert!(parse_recorded_values("tpmd-pcr-values: md5:1=00").is_err());
        assert!(parse_recorded_values("tpmd-pcr-values: sha256:1=00").is_err());
        assert!(parse_recorded_values("tpmd-pcr-values: sha256:24=00").is_err());
        assert!(parse_recorded_values("tpmd-pcr-values: sha256").is_err());
    }
}
