//! `pcr`: the PCR values, as `sha256:7=HEX` lines that a `--pcr-values` or `--values`
//! file takes.

use serde_json::json;

use super::Tpmd;
use crate::cli::PcrArgs;
use crate::error::CliResult;
use crate::{output, pcr_values};

pub async fn run(tpmd: &Tpmd, args: &PcrArgs, json_out: bool) -> CliResult<()> {
    let selection = match &args.selection {
        Some(text) => text.clone(),
        None => {
            let info = tpmd.check(tpmd.proxy.get_info().await)?;
            if info.family.as_deref() == Some("1.2") {
                "sha1:0-23".to_string()
            } else {
                "sha256:0-23".to_string()
            }
        }
    };
    let banks = pcr_values::selection(&selection)?;
    let values = pcr_values::from_tpm(tpmd, &banks).await?;
    let listed: Vec<_> = values
        .iter()
        .flat_map(|bank| {
            let name = tpmd_api::marshal::alg_name(bank.hash_alg).to_lowercase();
            bank.values.iter().map(move |(pcr, value)| {
                json!({"bank": name, "pcr": pcr, "value": pcr_values::hex(value)})
            })
        })
        .collect();
    output::print(json_out, &listed, |_| {
        pcr_values::to_lines(&values).trim_end().to_string()
    });
    Ok(())
}
