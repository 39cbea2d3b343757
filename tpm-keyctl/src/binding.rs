//! `--pcr`, `--pcr-values`, `--signed-policy`, `--with`: the policy a new key (wrap,
//! generate) is bound to.

use tpmd_api::client::key_policy::{authorization_for, signed_pcr_policy, KeyPolicy};

use crate::cli::BindArgs;
use crate::commands::Tpmd;
use crate::error::{CliError, CliResult};
use crate::owner::{self, Owner};
use crate::pcr_values;

/// The policy the arguments ask for (`None`: a key used with its auth value only).
/// `tpmd` is `None` when wrapping offline, where current PCR values cannot be read.
pub async fn key_policy(
    args: &BindArgs,
    tpmd: Option<&Tpmd>,
    has_auth_value: bool,
) -> CliResult<Option<KeyPolicy>> {
    let values = match &args.pcr {
        None => None,
        Some(text) => {
            let banks = pcr_values::selection(text)?;
            Some(match (&args.pcr_values, tpmd) {
                (Some(file), _) => pcr_values::from_file(file, &banks)?,
                (None, Some(tpmd)) => pcr_values::from_tpm(tpmd, &banks).await?,
                (None, None) => {
                    return Err(CliError::Usage(
                        "wrapping for another machine cannot read its PCRs: give their values with --pcr-values FILE".into(),
                    ))
                }
            })
        }
    };
    let Some(owner_path) = &args.signed_policy else {
        return match values {
            Some(values) => Ok(Some(
                KeyPolicy::pcrs(&values, has_auth_value)
                    .map_err(|e| CliError::Usage(e.to_string()))?,
            )),
            None => Ok(None),
        };
    };
    let owner = owner::public(owner_path)?;
    let policy_ref = args.policy_ref.clone().unwrap_or_default().into_bytes();
    let mut policy = KeyPolicy::signed(&owner, &policy_ref, has_auth_value);
    match (values, &args.with) {
        (None, None) => {}
        (Some(values), Some(private)) => {
            let signer = Owner::read(private, None)?;
            if signer.public(private)?.name().ok() != owner.name().ok() {
                return Err(CliError::file(
                    private,
                    format!(
                        "is not the private half of the owner key {}",
                        owner_path.display()
                    ),
                ));
            }
            let (_, a_hash) = authorization_for(&values, &policy_ref)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            let signature = signer.sign(private, tpmd, &a_hash, None).await?;
            let first = signed_pcr_policy(
                &values,
                &owner,
                &policy_ref,
                &signature,
                Some("the PCR values when the key was made".into()),
            )
            .map_err(|e| CliError::Usage(e.to_string()))?;
            policy.auth_policies.push(first);
        }
        (Some(_), None) => {
            return Err(CliError::Usage(
                "--pcr with --signed-policy needs --with OWNER (the owner's private key) to sign the first policy now; or leave --pcr out and sign one with `tpm-keyctl policy sign`".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(CliError::Usage(
                "--with signs a first policy for the PCR values of --pcr; give --pcr too".into(),
            ))
        }
    }
    Ok(Some(policy))
}

/// What a key is bound to, for people: `PCRs sha256:0,16`, `policies signed by ...`.
pub fn describe(policy: &KeyPolicy) -> String {
    use tpmd_api::auth_policy_file::key_authorize;
    use tpmd_api::client::key_policy::selection_of;
    use tpmd_api::policy::{describe_selection, Authorize, CC_POLICY_AUTH_VALUE, CC_POLICY_PCR};
    let mut parts = Vec::new();
    if let Some(authorize) = key_authorize(&policy.statements) {
        let Authorize {
            signer, policy_ref, ..
        } = authorize;
        let name = signer
            .name()
            .map(|n| pcr_values::hex(&n))
            .unwrap_or_default();
        let mut text = format!("policies signed by the owner key {name}");
        if !policy_ref.is_empty() {
            text.push_str(&format!(
                " for policyRef {:?}",
                String::from_utf8_lossy(&policy_ref)
            ));
        }
        parts.push(text);
        if !policy.auth_policies.is_empty() {
            parts.push(format!(
                "{} signed polic{} kept in the file",
                policy.auth_policies.len(),
                if policy.auth_policies.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            ));
        }
    } else if policy
        .statements
        .iter()
        .any(|s| s.command_code == CC_POLICY_PCR)
    {
        parts.push(format!(
            "the values of PCRs {}",
            describe_selection(&selection_of(&policy.recorded))
        ));
    }
    if policy
        .statements
        .iter()
        .any(|s| s.command_code == CC_POLICY_AUTH_VALUE)
    {
        parts.push("its auth value".into());
    }
    parts.join(", ")
}
