//! Why a key's policy failed, in words a user can act on: which PCRs the key is bound to
//! and, when the key file recorded their values, which of them changed; which signed
//! policies were tried; what to do. A policy failure is not a wrong auth value: it never
//! reaches the dictionary-attack budget.

use std::path::Path;

use tpmd_api::keyfile::PolicyStatement;
use tpmd_api::marshal::alg_name;
use tpmd_api::policy::{
    describe_selection, Authorize, PcrBank, CC_POLICY_AUTHORIZE, CC_POLICY_OR, CC_POLICY_PCR,
};
use tpmd_api::recorded_pcrs::parse_recorded_values;
use tpmd_tpm2::wire::cc;

use super::super::error::TpmError;
use super::super::pcrs;
use super::super::resource_manager::ResourceManager;
use tpmd_api::policy::pcr_parts;

/// What to do when a PCR-bound key no longer matches.
const ADVICE: &str = "use a key with a signed policy (`tpm-keyctl wrap --signed-policy OWNER.pub`, then `tpm-keyctl policy sign` for each new set of values) or wrap the key again for the current values";

// Format-one error numbers and format-zero codes that mean "this policy does not hold".
const RC1_VALUE: u32 = 0x04;
const RC1_SIGNATURE: u32 = 0x1B;
const RC1_POLICY_FAIL: u32 = 0x1D;
const RC1_TICKET: u32 = 0x20;
const RC1_EXPIRED: u32 = 0x23;
const RC1_POLICY_CC: u32 = 0x24;
const RC_POLICY: u32 = 0x126;
const RC_PCR: u32 = 0x127;
const RC_PCR_CHANGED: u32 = 0x128;

/// Whether a TPM error says that a policy does not hold (as opposed to a broken TPM,
/// a lost connection or a wrong auth value).
pub fn is_mismatch(error: &TpmError) -> bool {
    let Some(code) = error.code() else {
        return false;
    };
    if code & 0x80 != 0 {
        matches!(
            code & 0x3F,
            RC1_VALUE | RC1_SIGNATURE | RC1_POLICY_FAIL | RC1_TICKET | RC1_EXPIRED | RC1_POLICY_CC
        )
    } else {
        matches!(code & 0xFFF, RC_POLICY | RC_PCR | RC_PCR_CHANGED)
    }
}

/// A policy statement that failed, and how.
pub struct Step {
    pub statement: Option<PolicyStatement>,
    pub error: TpmError,
}

impl Step {
    pub fn new(statement: &PolicyStatement, error: TpmError) -> Step {
        Step {
            statement: Some(statement.clone()),
            error,
        }
    }

    pub fn bare(error: TpmError) -> Step {
        Step {
            statement: None,
            error,
        }
    }

    pub fn is_mismatch(&self) -> bool {
        self.statement.is_some() && is_mismatch(&self.error)
    }

    /// The PCR selection of a failed PolicyPCR.
    fn pcr_selection(&self) -> Option<Vec<PcrBank>> {
        let statement = self.statement.as_ref()?;
        (statement.command_code == CC_POLICY_PCR)
            .then(|| pcr_parts(&statement.command_policy).map(|(banks, _)| banks))
            .flatten()
    }
}

/// The error for a failed statement of a key's own policy.
pub fn explain(rm: &mut ResourceManager, step: Step, description: Option<&str>) -> TpmError {
    if !step.is_mismatch() {
        return step.error;
    }
    if let Some(banks) = step.pcr_selection() {
        return pcr_mismatch(rm, &banks, description);
    }
    let code = step.statement.as_ref().map_or(0, |s| s.command_code);
    TpmError::PolicyFailed(match code {
        CC_POLICY_OR => format!(
            "none of the branches of this key's PolicyOR holds on this machine now; {ADVICE}"
        ),
        _ => format!(
            "this key's policy does not hold: {} refused it ({}); {ADVICE}",
            cc::static_name(code),
            step.error
        ),
    })
}

/// The PCRs of `banks` whose value differs from the one recorded in the key file's
/// description: `None` when nothing was recorded (or the PCRs cannot be read).
fn changed_pcrs(
    rm: &mut ResourceManager,
    banks: &[PcrBank],
    description: Option<&str>,
) -> Option<Vec<String>> {
    let recorded = parse_recorded_values(description?).ok()??;
    let current = pcrs::read_values(rm, banks).ok()?;
    let mut changed = Vec::new();
    let mut compared = false;
    for bank in banks {
        let Some(expected) = recorded.iter().find(|r| r.hash_alg == bank.hash_alg) else {
            continue;
        };
        for pcr in &bank.pcrs {
            let (Some(want), Some(have)) =
                (expected.value(*pcr), current.get(&(bank.hash_alg, *pcr)))
            else {
                continue;
            };
            compared = true;
            if want != have.as_slice() {
                changed.push(format!("{}:{pcr}", alg_name(bank.hash_alg).to_lowercase()));
            }
        }
    }
    compared.then_some(changed)
}

/// A key's PolicyPCR does not hold: the selection, the PCRs that changed when the key
/// file recorded the values, and what to do.
pub fn pcr_mismatch(
    rm: &mut ResourceManager,
    banks: &[PcrBank],
    description: Option<&str>,
) -> TpmError {
    let which = match changed_pcrs(rm, banks, description) {
        Some(changed) if !changed.is_empty() => format!("; changed: {}", changed.join(", ")),
        Some(_) => "; the values recorded in the key file still match, so its policy was made for other values".into(),
        None => "; the key file records no expected values, so tpmd cannot tell which of them changed".into(),
    };
    TpmError::PolicyFailed(format!(
        "this key is bound to PCRs {} and they no longer hold the values it was bound to{which}; {ADVICE}",
        describe_selection(banks)
    ))
}

/// Why one signed policy did not hold, for the list in the final error.
pub fn why_not(source: &str, step: &Step) -> String {
    if let Some(banks) = step.pcr_selection() {
        return format!(
            "{source}: PCRs {} do not hold the values it was signed for",
            describe_selection(&banks)
        );
    }
    match step.statement.as_ref().map(|s| s.command_code) {
        Some(CC_POLICY_AUTHORIZE) => {
            format!("{source}: its signature does not verify for this key's owner key")
        }
        Some(code) => format!("{source}: {} refused it", cc::static_name(code)),
        None => format!("{source}: {}", step.error),
    }
}

fn where_policies_go(policy_dir: Option<&Path>) -> String {
    match policy_dir {
        Some(dir) => format!("{} or ~/.config/tpmd/policies", dir.display()),
        None => "~/.config/tpmd/policies".into(),
    }
}

/// No signed policy names the key's owner key and policyRef.
pub fn no_signed_policy(authorize: &Authorize, policy_dir: Option<&Path>) -> TpmError {
    let owner = authorize
        .signer
        .name()
        .map(|n| n.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .unwrap_or_default();
    TpmError::PolicyFailed(format!(
        "no authorized policy matches this key: it needs one signed by its policy owner (key name {owner}{}), and none was found in the key file or in {}; sign one with `tpm-keyctl policy sign` and put it there",
        if authorize.policy_ref.is_empty() {
            String::new()
        } else {
            format!(", policyRef {}", String::from_utf8_lossy(&authorize.policy_ref))
        },
        where_policies_go(policy_dir)
    ))
}

/// Signed policies were found, and none holds now.
pub fn no_signed_policy_holds(tried: &[String], policy_dir: Option<&Path>) -> TpmError {
    TpmError::PolicyFailed(format!(
        "no authorized policy matches this machine's state: {}; the key's policy owner signs one for the current values with `tpm-keyctl policy sign` and puts it in {}",
        tried.join("; "),
        where_policies_go(policy_dir)
    ))
}

/// The key's command refused its policy session (TPM_RC_POLICY_FAIL): the statements
/// ran but did not reach the key's authPolicy.
pub fn final_command(error: TpmError) -> TpmError {
    match error.code() {
        Some(code) if code & 0x80 != 0 && code & 0x3F == RC1_POLICY_FAIL => TpmError::PolicyFailed(
            format!("the TPM refused this key's policy session ({error}): the policy does not lead to the key's authPolicy; wrap the key again"),
        ),
        Some(code) if code & 0x80 != 0 && code & 0x3F == RC1_POLICY_CC => TpmError::PolicyFailed(
            "this key's policy allows other operations than this one (PolicyCommandCode)".into(),
        ),
        _ => error,
    }
}
