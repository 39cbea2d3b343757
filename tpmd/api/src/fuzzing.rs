//! What the policy parsers must hold for any input: the checks the fuzz targets in
//! `tpmd/api/fuzz` run, and the mutation tests run on every `cargo test`. A violated
//! property panics, which is what a fuzzer reports.

use crate::auth_policy_file;
use crate::keyfile::{PolicyStatement, TpmKeyFile};
use crate::marshal::{Reader, TPM_ALG_SHA256};
use crate::policy::{
    extend_statement, policy_digest, read_selection, Authorize, CC_POLICY_AUTHORIZE,
    CC_POLICY_AUTH_VALUE, CC_POLICY_COMMAND_CODE, CC_POLICY_OR, CC_POLICY_PASSWORD, CC_POLICY_PCR,
    CC_POLICY_SECRET,
};

/// The command codes whose bodies tpmd reads.
pub const COMMAND_CODES: [u32; 7] = [
    CC_POLICY_PCR,
    CC_POLICY_AUTH_VALUE,
    CC_POLICY_PASSWORD,
    CC_POLICY_COMMAND_CODE,
    CC_POLICY_OR,
    CC_POLICY_AUTHORIZE,
    CC_POLICY_SECRET,
];

/// A key file that parses writes back to bytes that parse to the same value, and the
/// digests of its policies are computed (or refused) without a panic.
pub fn check_key_file(data: &[u8]) {
    let Ok(key) = TpmKeyFile::parse(data) else {
        return;
    };
    let der = key.to_der();
    match TpmKeyFile::from_der(&der) {
        Ok(again) => assert!(again == key, "a key file changed on its way through DER"),
        Err(e) => panic!("a key file written by to_der does not parse: {e}"),
    }
    check_statements(&key.policy);
    for policy in &key.auth_policies {
        check_statements(&policy.statements);
        let _ = auth_policy_file::signed_authorize(policy);
    }
    let _ = auth_policy_file::key_authorize(&key.policy);
}

/// A signed policy file that parses writes back (PEM and DER) to the same value.
pub fn check_auth_policy_file(data: &[u8]) {
    let Ok(policy) = auth_policy_file::parse(data) else {
        return;
    };
    for bytes in [
        auth_policy_file::to_pem(&policy).into_bytes(),
        policy.to_der(),
    ] {
        match auth_policy_file::parse(&bytes) {
            Ok(again) => assert!(again == policy, "a signed policy changed when written"),
            Err(e) => panic!("a signed policy written back does not parse: {e}"),
        }
    }
    check_statements(&policy.statements);
}

/// `data[0]` picks a command code, the rest is its body.
pub fn check_statement_body(data: &[u8]) {
    let Some((pick, body)) = data.split_first() else {
        return;
    };
    let command_code = COMMAND_CODES[usize::from(*pick) % COMMAND_CODES.len()];
    check_statements(&[PolicyStatement {
        command_code,
        command_policy: body.to_vec(),
    }]);
    if let Ok(authorize) = Authorize::parse(body) {
        let _ = authorize.signer.name();
        let _ = authorize.has_signature();
    }
    let _ = read_selection(&mut Reader::new(body));
}

fn check_statements(statements: &[PolicyStatement]) {
    let whole = policy_digest(TPM_ALG_SHA256, statements);
    let mut digest = vec![0u8; 32];
    let mut stepwise = Ok(());
    for statement in statements {
        match extend_statement(TPM_ALG_SHA256, &digest, statement) {
            Ok(next) => {
                assert!(next.len() == 32, "a policy digest of the wrong size");
                digest = next;
            }
            Err(e) => {
                stepwise = Err(e);
                break;
            }
        }
    }
    match (whole, stepwise) {
        (Ok(d), Ok(())) => assert!(d == digest, "policy_digest differs from its steps"),
        (Err(a), Err(b)) => assert!(a == b, "policy_digest fails differently from its steps"),
        _ => panic!("policy_digest and its steps disagree on success"),
    }
}
