//! `info` and `stats`.

use serde_json::{json, Value};
use tpmd_api::dbus::Counters;

use super::Tpmd;
use crate::error::CliResult;
use crate::output;

/// TPM commands tpmd sent per request it served, when it reports its commands.
fn commands_per_request(c: &Counters) -> Option<f64> {
    let total: u64 = c.tpm_commands.as_ref()?.values().sum();
    let requests = c.requests.filter(|r| *r > 0)?;
    Some(total as f64 / requests as f64)
}

fn counters_json(c: &Counters) -> Value {
    json!({
        "requests": c.requests, "hits": c.hits, "loads": c.loads,
        "context-loads": c.context_loads, "evictions": c.evictions, "retries": c.retries,
        "resets-recovered": c.resets_recovered, "failures": c.failures,
        "cached-keys": c.cached_keys, "loaded-keys": c.loaded_keys,
        "tpm-commands": c.tpm_commands,
        "tpm-commands-per-request": commands_per_request(c),
    })
}

fn counters_text(c: &Counters) -> String {
    let n = |v: Option<u64>| v.unwrap_or(0);
    let mut text = format!(
        "requests {}  hits {}  loads {}  context loads {}  evictions {}  retries {}  resets recovered {}  failures {}  cached keys {}  loaded keys {}",
        n(c.requests), n(c.hits), n(c.loads), n(c.context_loads), n(c.evictions),
        n(c.retries), n(c.resets_recovered), n(c.failures), n(c.cached_keys), n(c.loaded_keys)
    );
    if let Some(commands) = &c.tpm_commands {
        let mut by_count: Vec<(&String, &u64)> = commands.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = by_count
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        let per_request = commands_per_request(c)
            .map(|r| format!("{r:.2} per request: "))
            .unwrap_or_default();
        text.push_str(&format!(
            "\nTPM commands sent: {per_request}{}",
            list.join("  ")
        ));
    }
    text
}

pub async fn info(tpmd: &Tpmd, json_out: bool) -> CliResult<()> {
    let info = tpmd.check(tpmd.proxy.get_info().await)?;
    let value = json!({
        "family": info.family, "manufacturer": info.manufacturer,
        "vendor-string": info.vendor_string, "firmware-version": info.firmware_version,
        "algorithms": info.algorithms, "key-types": info.key_types,
        "srk-present": info.srk_present, "srk-handle": info.srk_handle,
        "lockout": info.lockout, "transport": info.transport,
        "owned": info.owned, "nv-locked": info.nv_locked,
        "counters": info.counters.as_ref().map(counters_json),
    });
    output::print(json_out, &value, |_| {
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        let srk = match (info.srk_present, info.owned) {
            (Some(true), _) => format!("present at {:#010x}", info.srk_handle.unwrap_or(0)),
            (_, Some(false)) => {
                "absent: the TPM 1.2 has no owner; take ownership with `tpm-keyctl srk create`"
                    .into()
            }
            _ => "absent: create it with `tpm-keyctl srk create`".into(),
        };
        format!(
            "TPM family:    {}\nmanufacturer:  {} ({})\nfirmware:      {}\ntransport:     {}\nSRK:           {srk}\nlockout:       {}\nkey types:     {}\nalgorithms:    {}\ncounters:      {}",
            s(&info.family),
            s(&info.manufacturer),
            s(&info.vendor_string),
            s(&info.firmware_version),
            s(&info.transport),
            if info.lockout == Some(true) { "IN LOCKOUT" } else { "no" },
            info.key_types.clone().unwrap_or_default().join(" "),
            info.algorithms.clone().unwrap_or_default().join(" "),
            info.counters.as_ref().map(counters_text).unwrap_or_default(),
        )
    });
    Ok(())
}

pub async fn stats(tpmd: &Tpmd, json_out: bool) -> CliResult<()> {
    let counters = tpmd.check(tpmd.proxy.get_counters().await)?;
    output::print(json_out, &counters_json(&counters), |_| {
        counters_text(&counters)
    });
    Ok(())
}
