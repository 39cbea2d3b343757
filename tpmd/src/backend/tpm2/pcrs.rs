//! Reading PCR values: for `ReadPcrs`, and to name the PCRs that changed when a key's PCR
//! policy fails.

use std::collections::HashMap;

use tpmd_api::marshal::{alg_name, Reader};
use tpmd_api::policy::{marshal_selection, read_selection, PcrBank};
use tpmd_tpm2::wire::ops;

use super::error::{TpmError, TpmResult};
use super::resource_manager::{Authorization, ResourceManager};
use crate::backend::PcrValue;

fn parse<T>(result: Result<T, tpmd_tpm2::wire::WireError>) -> TpmResult<T> {
    result.map_err(|e| TpmError::from(tpmd_tpm2::tpm::TpmCallError::from(e)))
}

fn bank_name(hash_alg: u16) -> String {
    alg_name(hash_alg).to_lowercase()
}

/// The values of `selection`'s PCRs by (bank, index). TPM2_PCR_Read answers at most eight
/// values at a time and says which, so it is asked again for the rest.
pub fn read_values(
    rm: &mut ResourceManager,
    selection: &[PcrBank],
) -> TpmResult<HashMap<(u16, u8), Vec<u8>>> {
    let mut remaining: Vec<PcrBank> = selection
        .iter()
        .filter(|b| !b.pcrs.is_empty())
        .cloned()
        .collect();
    let mut values = HashMap::new();
    while !remaining.is_empty() {
        let response = rm.execute(
            &ops::pcr_read(&marshal_selection(&remaining)),
            &Authorization::None,
        )?;
        let (read, digests) = parse(ops::parse_pcr_read(&response))?;
        let read = read_selection(&mut Reader::new(&read)).map_err(|e| TpmError::Stack {
            command: "PCR_Read",
            detail: e.to_string(),
        })?;
        let mut digests = digests.into_iter();
        let mut progress = false;
        for bank in read {
            for pcr in bank.pcrs {
                let Some(value) = digests.next() else { break };
                values.insert((bank.hash_alg, pcr), value);
                progress = true;
                if let Some(wanted) = remaining.iter_mut().find(|b| b.hash_alg == bank.hash_alg) {
                    wanted.pcrs.retain(|p| *p != pcr);
                }
            }
        }
        remaining.retain(|b| !b.pcrs.is_empty());
        if !progress {
            let banks: Vec<String> = remaining.iter().map(|b| bank_name(b.hash_alg)).collect();
            return Err(TpmError::Unsupported(format!(
                "this TPM has no {} PCR bank (or not those PCRs); see `tpm-keyctl pcr` for the banks it has",
                banks.join(", ")
            )));
        }
    }
    Ok(values)
}

/// `ReadPcrs`: one (bank, index, value) per PCR, in selection order.
pub fn read_pcrs(rm: &mut ResourceManager, selection: &[PcrBank]) -> TpmResult<Vec<PcrValue>> {
    let mut values = read_values(rm, selection)?;
    let mut out = Vec::new();
    for bank in selection {
        for pcr in &bank.pcrs {
            let value = values
                .remove(&(bank.hash_alg, *pcr))
                .ok_or_else(|| TpmError::Stack {
                    command: "PCR_Read",
                    detail: format!("the TPM did not return PCR {pcr}"),
                })?;
            out.push((bank_name(bank.hash_alg), u32::from(*pcr), value));
        }
    }
    Ok(out)
}
