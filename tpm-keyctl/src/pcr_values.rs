//! PCR values given in a file (`--pcr-values`, `policy sign --values`) or read from the
//! TPM through tpmd. A values file is one of:
//!
//! - text lines `sha256:7=HEX` (what `tpm-keyctl pcr` prints; `#` starts a comment);
//! - what `tpm2_pcrread` prints (`sha256:` then `  7 : 0xHEX` lines);
//! - what `tpm2_pcrread -o FILE` writes: the values back to back, in selection order.

use std::path::Path;

use tpmd_api::marshal::digest_size;
use tpmd_api::policy::{describe_selection, parse_selection, PcrBank};
use tpmd_api::recorded_pcrs::RecordedBank;

use crate::commands::Tpmd;
use crate::error::{CliError, CliResult};

/// A selection from the command line, with ranges: `sha256:0,2,4,7`, `sha256:0-7`.
pub fn selection(text: &str) -> CliResult<Vec<PcrBank>> {
    parse_selection(text).map_err(|e| CliError::Usage(format!("--pcr {text}: {e}")))
}

fn bank_alg(name: &str) -> Option<u16> {
    parse_selection(&format!("{name}:0"))
        .ok()
        .and_then(|banks| banks.first().map(|b| b.hash_alg))
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if text.is_empty() || !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every (bank, PCR, value) a text values file names.
fn parse_text(text: &str) -> Result<Vec<(u16, u8, Vec<u8>)>, String> {
    let mut found = Vec::new();
    let mut bank: Option<u16> = None;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = || format!("line {}: {line:?} is not `sha256:7=HEX`", number + 1);
        // `sha256:7=HEX`
        if let Some((left, value)) = line.split_once('=') {
            let (alg, pcr) = left.split_once(':').ok_or_else(bad)?;
            let alg = bank_alg(alg.trim()).ok_or_else(bad)?;
            let pcr = pcr.trim().parse::<u8>().map_err(|_| bad())?;
            found.push((alg, pcr, from_hex(value).ok_or_else(bad)?));
            continue;
        }
        // tpm2_pcrread: `sha256:` opens a bank, `7 : 0xHEX` is a value in it.
        if let Some(name) = line.strip_suffix(':') {
            bank = Some(bank_alg(name.trim()).ok_or_else(bad)?);
            continue;
        }
        let (pcr, value) = line.split_once(':').ok_or_else(bad)?;
        let alg = bank.ok_or_else(bad)?;
        let pcr = pcr.trim().parse::<u8>().map_err(|_| bad())?;
        found.push((alg, pcr, from_hex(value).ok_or_else(bad)?));
    }
    Ok(found)
}

/// The values of `banks` from a values file.
pub fn from_file(path: &Path, banks: &[PcrBank]) -> CliResult<Vec<RecordedBank>> {
    let bytes = crate::files::read(path)?;
    let sizes: Vec<usize> = banks
        .iter()
        .flat_map(|b| b.pcrs.iter().map(|_| digest_size(b.hash_alg).unwrap_or(0)))
        .collect();
    let text = std::str::from_utf8(&bytes).ok();
    let listed = match text.map(parse_text) {
        Some(Ok(found)) => found,
        // Binary, as `tpm2_pcrread -o` writes it.
        _ if bytes.len() == sizes.iter().sum::<usize>() => {
            let mut rest = bytes.as_slice();
            let mut found = Vec::new();
            for bank in banks {
                for pcr in &bank.pcrs {
                    let size = digest_size(bank.hash_alg).unwrap_or(0);
                    let (value, tail) = rest.split_at(size);
                    found.push((bank.hash_alg, *pcr, value.to_vec()));
                    rest = tail;
                }
            }
            found
        }
        Some(Err(e)) => return Err(CliError::file(path, e)),
        None => {
            return Err(CliError::file(
                path,
                format!(
                "is neither `sha256:7=HEX` lines nor the {} bytes `tpm2_pcrread -o` writes for {}",
                sizes.iter().sum::<usize>(),
                describe_selection(banks)
            ),
            ))
        }
    };
    let mut out = Vec::new();
    for bank in banks {
        let size = digest_size(bank.hash_alg).unwrap_or(0);
        let mut values = Vec::new();
        for pcr in &bank.pcrs {
            let name = describe_selection(&[PcrBank {
                hash_alg: bank.hash_alg,
                pcrs: vec![*pcr],
            }]);
            let value = listed
                .iter()
                .rev()
                .find(|(alg, p, _)| *alg == bank.hash_alg && p == pcr)
                .map(|(_, _, v)| v.clone())
                .ok_or_else(|| {
                    CliError::file(
                        path,
                        format!("has no value for {name}; add a line {name}=HEX"),
                    )
                })?;
            if value.len() != size {
                return Err(CliError::file(
                    path,
                    format!(
                        "the value of {name} is {} bytes; that bank's are {size}",
                        value.len()
                    ),
                ));
            }
            values.push((*pcr, value));
        }
        out.push(RecordedBank {
            hash_alg: bank.hash_alg,
            values,
        });
    }
    Ok(out)
}

/// The current values of `banks`, read by tpmd from the TPM.
pub async fn from_tpm(tpmd: &Tpmd, banks: &[PcrBank]) -> CliResult<Vec<RecordedBank>> {
    let selection = describe_selection(banks);
    let read = tpmd.check(tpmd.proxy.read_pcrs(&selection).await)?;
    let mut out: Vec<RecordedBank> = Vec::new();
    for (bank, pcr, value) in read {
        let hash_alg = bank_alg(&bank).ok_or_else(|| {
            CliError::Daemon(format!("tpmd answered with an unknown PCR bank {bank:?}"))
        })?;
        let pcr = u8::try_from(pcr)
            .map_err(|_| CliError::Daemon(format!("tpmd answered with PCR {pcr}")))?;
        match out.last_mut() {
            Some(last) if last.hash_alg == hash_alg => last.values.push((pcr, value)),
            _ => out.push(RecordedBank {
                hash_alg,
                values: vec![(pcr, value)],
            }),
        }
    }
    let answered: Vec<PcrBank> = tpmd_api::client::key_policy::selection_of(&out);
    if answered != banks {
        return Err(CliError::Daemon(format!(
            "asked tpmd for the PCRs {selection} and got {}; does the TPM have that bank?",
            describe_selection(&answered)
        )));
    }
    Ok(out)
}

/// Values as `sha256:7=HEX` lines: a values file.
pub fn to_lines(values: &[RecordedBank]) -> String {
    let mut text = String::new();
    for bank in values {
        for (pcr, value) in &bank.values {
            let name = describe_selection(&[PcrBank {
                hash_alg: bank.hash_alg,
                pcrs: vec![*pcr],
            }]);
            text.push_str(&format!("{name}={}\n", hex(value)));
        }
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), content).unwrap();
        file
    }

    #[test]
    fn three_formats_give_the_same_values() {
        let banks = selection("sha256:0,16").unwrap();
        let zero = "00".repeat(32);
        let ones = "11".repeat(32);
        let lines = format!("# before the update\nsha256:16={ones}\nsha256:0={zero}\n");
        let pcrread = format!(
            "  sha256:\n    0 : 0x{}\n    16: 0x{}\n",
            zero.to_uppercase(),
            ones
        );
        let mut binary = vec![0u8; 32];
        binary.extend_from_slice(&[0x11; 32]);
        let expected = vec![RecordedBank {
            hash_alg: banks[0].hash_alg,
            values: vec![(0, vec![0; 32]), (16, vec![0x11; 32])],
        }];
        for content in [lines.into_bytes(), pcrread.into_bytes(), binary] {
            let file = write(&content);
            assert_eq!(from_file(file.path(), &banks).unwrap(), expected);
        }
        assert_eq!(
            to_lines(&expected),
            format!("sha256:0={zero}\nsha256:16={ones}\n")
        );
    }

    #[test]
    fn missing_or_malformed_values_are_named() {
        let banks = selection("sha256:0,16").unwrap();
        let file = write(format!("sha256:0={}\n", "00".repeat(32)).as_bytes());
        let e = from_file(file.path(), &banks).unwrap_err().to_string();
        assert!(e.contains("no value for sha256:16"), "{e}");
        let file = write(b"sha256:0=abc\n");
        let e = from_file(file.path(), &banks).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let file = write(format!("sha256:0={}\nsha256:16=00\n", "00".repeat(32)).as_bytes());
        let e = from_file(file.path(), &banks).unwrap_err().to_string();
        assert!(e.contains("is 1 bytes"), "{e}");
        assert!(selection("sha256:99").is_err());
    }
}
