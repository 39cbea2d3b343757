//! `policy sign`: the owner authorizes PCR values for the keys bound to its signed
//! policies (`wrap --signed-policy`), ahead of an update that changes them. The values
//! come from a file (read on a machine that already runs the update) or from this TPM.

use std::path::PathBuf;

use serde_json::json;
use tpmd_api::auth_policy_file::{self, user_policy_dir, SYSTEM_POLICY_DIR};
use tpmd_api::client::key_policy::{authorization_for, signed_pcr_policy};
use tpmd_api::policy::describe_selection;

use super::Tpmd;
use crate::cli::PolicySignArgs;
use crate::error::{CliError, CliResult};
use crate::owner::Owner;
use crate::{files, output, pcr_values};

/// A file name from the policy's name, or from the digest of what it authorizes.
fn default_name(args: &PolicySignArgs, a_hash: &[u8]) -> String {
    let from_name: String = args
        .name
        .as_deref()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = if from_name.trim_matches('_').is_empty() {
        pcr_values::hex(&a_hash[..8])
    } else {
        from_name
    };
    format!("{stem}.{}", auth_policy_file::EXTENSION)
}

pub async fn run(tpmd: Option<&Tpmd>, args: &PolicySignArgs, json_out: bool) -> CliResult<()> {
    let banks = pcr_values::selection(&args.pcr)?;
    let values = match (&args.values, tpmd) {
        (Some(file), _) => pcr_values::from_file(file, &banks)?,
        (None, Some(tpmd)) => pcr_values::from_tpm(tpmd, &banks).await?,
        (None, None) => {
            return Err(CliError::Usage(
                "give the PCR values with --values FILE".into(),
            ))
        }
    };
    let owner = Owner::read(&args.with, args.passphrase_file.as_deref())?;
    let owner_public = owner.public(&args.with)?;
    let policy_ref = args.policy_ref.as_bytes();
    let (_, a_hash) =
        authorization_for(&values, policy_ref).map_err(|e| CliError::Usage(e.to_string()))?;
    let signature = owner
        .sign(&args.with, tpmd, &a_hash, args.auth_file.as_deref())
        .await?;
    let policy = signed_pcr_policy(
        &values,
        &owner_public,
        policy_ref,
        &signature,
        args.name.clone(),
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let out = match &args.output {
        Some(path) => path.clone(),
        None => {
            let dir = user_policy_dir().ok_or_else(|| {
                CliError::Usage("no home directory to keep the policy in; pass -o FILE".into())
            })?;
            std::fs::create_dir_all(&dir).map_err(|e| CliError::io(&dir, e))?;
            dir.join(default_name(args, &a_hash))
        }
    };
    files::write_atomic(
        &out,
        auth_policy_file::to_pem(&policy).as_bytes(),
        0o644,
        args.force,
    )?;
    let selection = describe_selection(&banks);
    output::print(
        json_out,
        &json!({"output": out, "pcrs": selection, "name": args.name}),
        |_| {
            let mut text = format!(
                "signed a policy for the values of PCRs {selection} into {}",
                out.display()
            );
            let user_dir: Option<PathBuf> = user_policy_dir();
            if user_dir.as_deref() != out.parent() && !out.starts_with(SYSTEM_POLICY_DIR) {
                text.push_str(&format!(
                    "\nnext: put it into {} (your keys) or {SYSTEM_POLICY_DIR} (every user's), or into the machine's package, before the update",
                    user_dir
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|| "~/.config/tpmd/policies".into())
                ));
            }
            text
        },
    );
    Ok(())
}
