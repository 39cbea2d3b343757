//! Taking a policy session through a key's policy: its statements in order, and for a
//! policy that starts with TPM2_PolicyAuthorize, first the statements of a signed policy
//! that serves it (from the key bytes, then the policy directory), its ticket (cached)
//! and the PolicyAuthorize itself.

use std::path::Path;

use tpmd_api::auth_policy_file::{read_dir, serves};
use tpmd_api::keyfile::{AuthPolicy, PolicyStatement};
use tpmd_api::policy::{policy_digest, Authorize, CC_POLICY_AUTH_VALUE};
use tpmd_api::public::hash_parts;
use tpmd_tpm2::wire::ops;
use tracing::{debug, warn};

use super::super::blob::KeyBlob;
use super::super::error::{TpmError, TpmResult};
use super::super::resource_manager::{PolicySession, ResourceManager};
use super::failure::{self, Step};
use super::{check_signed, key_authorize, normalized_all, SESSION_HASH};

fn parse<T>(result: Result<T, tpmd_tpm2::wire::WireError>) -> TpmResult<T> {
    result.map_err(|e| TpmError::from(tpmd_tpm2::tpm::TpmCallError::from(e)))
}

/// Takes `session` through `blob`'s policy, trying the signed policies in the key bytes
/// and in `policy_dir` when it starts with TPM2_PolicyAuthorize.
pub fn satisfy(
    rm: &mut ResourceManager,
    session: &mut PolicySession,
    blob: &KeyBlob,
    policy_dir: Option<&Path>,
) -> TpmResult<()> {
    let statements = normalized_all(&blob.policy)?;
    let rest = match key_authorize(&blob.policy) {
        Some(authorize) => {
            authorized(rm, session, blob, &authorize, policy_dir)?;
            &statements[1..]
        }
        None => &statements[..],
    };
    run_statements(rm, session, rest)
        .map_err(|step| failure::explain(rm, step, blob.description.as_deref()))
}

/// Sends each statement to the session.
fn run_statements(
    rm: &mut ResourceManager,
    session: &mut PolicySession,
    statements: &[PolicyStatement],
) -> Result<(), Step> {
    for statement in statements {
        let command = ops::policy_command(
            session.handle(),
            statement.command_code,
            &statement.command_policy,
        );
        rm.policy_command(session, &command)
            .map_err(|error| Step::new(statement, error))?;
        if statement.command_code == CC_POLICY_AUTH_VALUE {
            session.auth_value_needed();
        }
    }
    Ok(())
}

/// The most signed policies tried for one request: each costs the TPM a few commands, and
/// the key bytes (with the client's appended policies) come from the caller.
const MAX_CANDIDATES: usize = 32;

/// A signed policy that may serve the key, and where it came from.
struct Candidate {
    source: String,
    policy: AuthPolicy,
}

/// The signed policies naming the key's owner key and policyRef: the key bytes' own
/// first, then the policy directory's, each once.
fn candidates(blob: &KeyBlob, authorize: &Authorize, policy_dir: Option<&Path>) -> Vec<Candidate> {
    let mut list: Vec<Candidate> = Vec::new();
    let mut offer = |source: String, policy: AuthPolicy| {
        if !serves(authorize, &policy) || list.iter().any(|c| c.policy == policy) {
            return;
        }
        if list.len() >= MAX_CANDIDATES {
            warn!(%source, "more than {MAX_CANDIDATES} signed policies for one key; not trying the rest");
            return;
        }
        match check_signed(&policy.statements) {
            Ok(()) => list.push(Candidate { source, policy }),
            Err(e) => warn!(%source, "skipping a signed policy tpmd cannot run: {e}"),
        }
    };
    for (i, policy) in blob.auth_policies.iter().enumerate() {
        let source = policy
            .name
            .clone()
            .unwrap_or_else(|| format!("the key's signed policy {}", i + 1));
        offer(source, policy.clone());
    }
    if let Some(dir) = policy_dir {
        for file in read_dir(dir) {
            match file.policy {
                Ok(policy) => {
                    let source = match &policy.name {
                        Some(name) => format!("{name} ({})", file.path.display()),
                        None => file.path.display().to_string(),
                    };
                    offer(source, policy);
                }
                Err(e) => warn!(path = %file.path.display(), "skipping a signed policy file: {e}"),
            }
        }
    }
    list
}

/// Runs the first signed policy that holds, ending with the key's PolicyAuthorize.
fn authorized(
    rm: &mut ResourceManager,
    session: &mut PolicySession,
    blob: &KeyBlob,
    authorize: &Authorize,
    policy_dir: Option<&Path>,
) -> TpmResult<()> {
    let candidates = candidates(blob, authorize, policy_dir);
    if candidates.is_empty() {
        return Err(failure::no_signed_policy(authorize, policy_dir));
    }
    let mut tried = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        if i > 0 {
            rm.policy_command(session, &ops::policy_restart(session.handle()))?;
            session.restarted();
        }
        match run_signed(rm, session, &candidate.policy) {
            Ok(()) => {
                debug!(source = %candidate.source, "signed policy holds");
                return Ok(());
            }
            Err(step) if step.is_mismatch() => {
                tried.push(failure::why_not(&candidate.source, &step));
            }
            Err(step) => return Err(step.error),
        }
    }
    Err(failure::no_signed_policy_holds(&tried, policy_dir))
}

/// One signed policy: its statements, then PolicyAuthorize with a ticket for its
/// signature (cached until a TPM reset).
fn run_signed(
    rm: &mut ResourceManager,
    session: &mut PolicySession,
    policy: &AuthPolicy,
) -> Result<(), Step> {
    let statements = normalized_all(&policy.statements).map_err(Step::bare)?;
    let Some((last, body)) = statements.split_last() else {
        return Err(Step::bare(TpmError::BadKeyFile(
            "an empty signed policy".into(),
        )));
    };
    run_statements(rm, session, body)?;
    let fail = |error: TpmError| Step::new(last, error);
    let bad = |e: String| fail(TpmError::BadKeyFile(format!("a signed policy: {e}")));
    let approved = policy_digest(SESSION_HASH, body).map_err(|e| bad(e.to_string()))?;
    let authorize = Authorize::parse(&last.command_policy).map_err(|e| bad(e.to_string()))?;
    let name = authorize.signer.name().map_err(|e| bad(e.to_string()))?;
    // PolicyAuthorize checks the ticket against H(approvedPolicy || policyRef) with the
    // hash of keySign's name.
    let signed_digest = hash_parts(
        authorize.signer.name_alg,
        &[&approved, &authorize.policy_ref],
    )
    .map_err(|e| bad(e.to_string()))?;
    let key = (name.clone(), approved.clone(), authorize.policy_ref.clone());
    let cached = rm.tickets().get(&key);
    let ticket = match &cached {
        Some(ticket) => ticket.clone(),
        None => verify(rm, session, &authorize, &signed_digest).map_err(fail)?,
    };
    let handle = session.handle();
    let command = |ticket: &[u8]| {
        ops::policy_authorize(handle, &approved, &authorize.policy_ref, &name, ticket)
    };
    let ticket = match rm.policy_command(session, &command(&ticket)) {
        Ok(_) => ticket,
        // A ticket from before something we did not see (a TPM clear): make a new one.
        Err(e) if cached.is_some() => {
            debug!(error = %e, "cached ticket refused; verifying the signature again");
            rm.tickets().remove(&key);
            let ticket = verify(rm, session, &authorize, &signed_digest).map_err(fail)?;
            rm.policy_command(session, &command(&ticket))
                .map_err(fail)?;
            ticket
        }
        Err(e) => return Err(fail(e)),
    };
    rm.tickets().insert(key, ticket);
    Ok(())
}

/// LoadExternal of the owner's public key, VerifySignature of what it signed: the
/// ticket PolicyAuthorize needs. The key is flushed at once.
fn verify(
    rm: &mut ResourceManager,
    session: &PolicySession,
    authorize: &Authorize,
    signed_digest: &[u8],
) -> TpmResult<Vec<u8>> {
    let (handle, _) = rm.load_external(session, &authorize.signer_public)?;
    let result = rm
        .policy_command(
            session,
            &ops::verify_signature(handle, signed_digest, &authorize.signature),
        )
        .and_then(|r| parse(ops::parse_verify_signature(&r)));
    rm.flush_for(session, handle);
    result
}
