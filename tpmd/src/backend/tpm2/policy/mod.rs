//! Keys with policies: the statements of a key file's `policy` run in a policy session
//! within the request that uses the key ([`run`]), and failures explained in terms of
//! PCRs and signed policies ([`failure`]).
//!
//! Key files write TPM2_PolicyPCR in two layouts (`tpmd_api::policy::pcr_parts` reads
//! both); the TPM is always sent its own order.

pub mod failure;
pub mod run;

use tpmd_api::keyfile::PolicyStatement;
use tpmd_api::marshal::{alg_name, put_tpm2b, TPM_ALG_SHA256};
use tpmd_api::policy::{
    marshal_selection, pcr_parts, policy_digest, Authorize, CC_POLICY_AUTHORIZE,
    CC_POLICY_AUTH_VALUE, CC_POLICY_COMMAND_CODE, CC_POLICY_OR, CC_POLICY_PASSWORD, CC_POLICY_PCR,
    CC_POLICY_SECRET,
};
use tpmd_api::public::TpmPublic;

use super::error::{TpmError, TpmResult};

/// The hash of tpmd's policy sessions, so the name algorithm a policy key must have.
const SESSION_HASH: u16 = TPM_ALG_SHA256;

/// `statement` as the TPM takes it (PolicyPCR in the TPM's order; PolicyPassword run as
/// PolicyAuthValue, which extends the digest the same way and keeps the auth value off
/// the bus inside an HMAC).
pub fn normalized(statement: &PolicyStatement) -> TpmResult<PolicyStatement> {
    match statement.command_code {
        CC_POLICY_PCR => {
            let (banks, digest) = pcr_parts(&statement.command_policy).ok_or_else(|| {
                TpmError::BadKeyFile(
                    "a PolicyPCR statement in the key's policy is malformed".into(),
                )
            })?;
            let mut body = Vec::new();
            put_tpm2b(&mut body, &digest);
            body.extend_from_slice(&marshal_selection(&banks));
            Ok(PolicyStatement {
                command_code: CC_POLICY_PCR,
                command_policy: body,
            })
        }
        CC_POLICY_PASSWORD => Ok(PolicyStatement {
            command_code: CC_POLICY_AUTH_VALUE,
            command_policy: Vec::new(),
        }),
        _ => Ok(statement.clone()),
    }
}

pub fn normalized_all(statements: &[PolicyStatement]) -> TpmResult<Vec<PolicyStatement>> {
    statements.iter().map(normalized).collect()
}

/// Whether tpmd can run `statements` for a key with `public`: checked when the key file
/// is parsed, so a key tpmd cannot use is refused with the reason before any TPM
/// command. `signed` is true for a signed policy, whose last statement is its
/// PolicyAuthorize.
fn check_statements(statements: &[PolicyStatement], signed: bool) -> TpmResult<()> {
    let last = statements.len().saturating_sub(1);
    for (i, statement) in statements.iter().enumerate() {
        match statement.command_code {
            CC_POLICY_PCR | CC_POLICY_AUTH_VALUE | CC_POLICY_PASSWORD | CC_POLICY_OR => {}
            CC_POLICY_COMMAND_CODE if statement.command_policy.len() == 4 => {}
            CC_POLICY_AUTHORIZE if (i == 0 && !signed) || (i == last && signed) => {
                Authorize::parse(&statement.command_policy)
                    .map_err(|e| TpmError::BadKeyFile(e.to_string()))?;
            }
            CC_POLICY_AUTHORIZE => {
                return Err(TpmError::Unsupported(
                    "TPM2_PolicyAuthorize may only start a key's policy (and end a signed policy); tpmd does not chain signed policies".into(),
                ))
            }
            CC_POLICY_SECRET => {
                return Err(TpmError::Unsupported(
                    "this key's policy uses TPM2_PolicySecret, which tpmd does not run; wrap the key with a PCR or signed policy instead".into(),
                ))
            }
            CC_POLICY_COMMAND_CODE => {
                return Err(TpmError::BadKeyFile(
                    "a PolicyCommandCode statement in the key's policy is malformed".into(),
                ))
            }
            other => {
                return Err(TpmError::Unsupported(format!(
                    "this key's policy uses TPM command {other:#x}, which tpmd does not run; supported: PolicyPCR, PolicyAuthValue, PolicyPassword, PolicyCommandCode, PolicyOR, PolicyAuthorize"
                )))
            }
        }
        normalized(statement)?;
    }
    Ok(())
}

/// Checks a key file's policy: statements tpmd runs, a name algorithm its sessions use,
/// and a digest equal to the key's authPolicy (otherwise no session could ever satisfy
/// it, and the TPM would only say TPM_RC_POLICY_FAIL).
pub fn check_runnable(public: &TpmPublic, statements: &[PolicyStatement]) -> TpmResult<()> {
    if public.name_alg != SESSION_HASH {
        return Err(TpmError::Unsupported(format!(
            "tpmd runs policy sessions with SHA-256, and this key's name algorithm is {}",
            alg_name(public.name_alg)
        )));
    }
    check_statements(statements, false)?;
    let digest = policy_digest(SESSION_HASH, &normalized_all(statements)?)
        .map_err(|e| TpmError::BadKeyFile(e.to_string()))?;
    if digest != public.auth_policy {
        return Err(TpmError::BadKeyFile(
            "the key file's policy does not lead to the key's authPolicy, so the TPM would never accept it; the file's policy statements are damaged or belong to another key".into(),
        ));
    }
    Ok(())
}

/// The PolicyAuthorize a key's policy starts with, if it does.
pub fn key_authorize(statements: &[PolicyStatement]) -> Option<Authorize> {
    tpmd_api::auth_policy_file::key_authorize(statements)
}

/// A signed policy's statements tpmd can run: as for a key's policy, ending with the
/// owner's PolicyAuthorize.
pub fn check_signed(statements: &[PolicyStatement]) -> TpmResult<()> {
    check_statements(statements, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tpmd_api::policy::{parse_selection, pcr_statement};

    #[test]
    fn pcr_statements_read_in_both_layouts() {
        let banks = parse_selection("sha256:0,16").unwrap();
        let digest = vec![7u8; 32];
        let engine = pcr_statement(&banks, &digest);
        assert_eq!(
            pcr_parts(&engine.command_policy),
            Some((banks.clone(), digest.clone()))
        );
        let mut tpm_order = Vec::new();
        put_tpm2b(&mut tpm_order, &digest);
        tpm_order.extend_from_slice(&marshal_selection(&banks));
        assert_eq!(pcr_parts(&tpm_order), Some((banks.clone(), digest.clone())));
        let tpm = PolicyStatement {
            command_code: CC_POLICY_PCR,
            command_policy: tpm_order,
        };
        assert_eq!(normalized(&engine).unwrap(), tpm);
        assert_eq!(normalized(&tpm).unwrap(), tpm);
        assert_eq!(pcr_parts(&[0, 1, 2]), None);
    }

    #[test]
    fn policy_secret_and_misplaced_authorize_are_refused_with_the_reason() {
        let secret = PolicyStatement {
            command_code: CC_POLICY_SECRET,
            command_policy: vec![0; 10],
        };
        let err = check_statements(&[secret], false).unwrap_err();
        assert!(err.to_string().contains("PolicySecret"), "{err}");
        let unknown = PolicyStatement {
            command_code: 0x16D,
            command_policy: vec![],
        };
        assert!(matches!(
            check_statements(&[unknown], false),
            Err(TpmError::Unsupported(_))
        ));
    }
}
