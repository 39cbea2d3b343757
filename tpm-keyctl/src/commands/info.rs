//! `info` and `stats`.

use serde_json::{json, Value};
use tpmd_api::dbus::{Counters, Info};

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
        "auth-failures": c.auth_failures, "auth-refused": c.auth_refused,
        "lockout-answers": c.lockout_answers,
    })
}

fn counters_text(c: &Counters) -> String {
    let n = |v: Option<u64>| v.unwrap_or(0);
    let mut text = format!(
        "requests {}  hits {}  loads {}  context loads {}  evictions {}  retries {}  resets recovered {}  failures {}  cached keys {}  loaded keys {}  wrong auth values {}  refused by the DA budget {}",
        n(c.requests), n(c.hits), n(c.loads), n(c.context_loads), n(c.evictions),
        n(c.retries), n(c.resets_recovered), n(c.failures), n(c.cached_keys), n(c.loaded_keys),
        n(c.auth_failures), n(c.auth_refused)
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
        "lockout": info.lockout, "da-failed-tries": info.da_failed_tries,
        "da-max-tries": info.da_max_tries, "da-recovery-time": info.da_recovery_time,
        "da-lockout-recovery": info.da_lockout_recovery,
        "lockout-ends-in": info.lockout_ends_in, "da-healed-in": info.da_healed_in,
        "transport": info.transport,
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
            lockout_text(&info),
            info.key_types.clone().unwrap_or_default().join(" "),
            info.algorithms.clone().unwrap_or_default().join(" "),
            info.counters.as_ref().map(counters_text).unwrap_or_default(),
        )
    });
    Ok(())
}

/// The lockout line: the TPM's own answer, its counter, and tpmd's estimate of when it
/// recovers (a TPM 2.0 reports no time remaining).
fn lockout_text(info: &Info) -> String {
    let state = match info.lockout {
        Some(true) => "IN LOCKOUT",
        Some(false) => "no",
        None => "unknown (the TPM did not say)",
    };
    let mut details = Vec::new();
    if let (Some(failed), Some(max)) = (info.da_failed_tries, info.da_max_tries) {
        details.push(format!("failed tries {failed} of {max}"));
    }
    if let Some(secs) = info.lockout_ends_in {
        details.push(format!("ends in at most {secs} s"));
    } else if let Some(secs) = info.da_healed_in.filter(|s| *s > 0) {
        details.push(format!("back to 0 in at most {secs} s"));
    }
    if let Some(secs) = info.da_recovery_time {
        details.push(format!("one failure forgotten every {secs} s"));
    }
    if details.is_empty() {
        state.to_string()
    } else {
        format!("{state} ({})", details.join("; "))
    }
}

pub async fn stats(tpmd: &Tpmd, json_out: bool) -> CliResult<()> {
    let counters = tpmd.check(tpmd.proxy.get_counters().await)?;
    output::print(json_out, &counters_json(&counters), |_| {
        counters_text(&counters)
    });
    Ok(())
}
