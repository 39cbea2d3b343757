//! `reset-lockout` and `lock-nv`: the fixes `doctor` prints, done by tpmd, which holds the
//! TPM (trousers' tpm-tools cannot reach it while tpmd runs).

use serde_json::json;

use super::Tpmd;
use crate::cli::ResetLockoutArgs;
use crate::error::CliResult;
use crate::{files, output};

pub async fn reset_lockout(tpmd: &Tpmd, args: &ResetLockoutArgs, json_out: bool) -> CliResult<()> {
    match &args.auth_file {
        Some(file) => {
            let auth = files::read_secret(file)?;
            tpmd.check(tpmd.proxy.reset_lockout_with_auth(&auth).await)?;
        }
        None => tpmd.check(tpmd.proxy.reset_lockout().await)?,
    }
    output::print(json_out, &json!({ "lockout": false }), |_| {
        "the TPM's dictionary-attack lockout is cleared".into()
    });
    Ok(())
}

pub async fn lock_nv(tpmd: &Tpmd, json_out: bool) -> CliResult<()> {
    let locked_now = tpmd.check(tpmd.proxy.lock_nv().await)?;
    output::print(json_out, &json!({ "locked-now": locked_now }), |_| {
        if locked_now {
            "NV is locked: writing it now needs authorization".into()
        } else {
            "NV was locked already".into()
        }
    });
    Ok(())
}
