//! ssh-add of a software key (or of a key with its certificate). A key the TPM can hold
//! is wrapped for it on the spot (the duplicate is built here, tpmd only imports it) and
//! only the wrapped blob is kept. A key no TPM can hold, or this TPM cannot, is kept in
//! the agent's memory, passed to the upstream agent, or refused, as `--non-tpm-keys`
//! says. The private key is wiped when the request is dropped.

use std::sync::Arc;

use ssh_key::private::KeypairData;
use ssh_key::public::KeyData;
use tpmd_api::client::{wrap_and_import, WrapError};
use tpmd_api::privkey::{software_key_from_ssh, KeyReadError};
use tpmd_api::DaemonError;
use tracing::info;

use crate::add_request::{parse_add, AddRequest};
use crate::agent::{Agent, Session};
use crate::config::NonTpmKeys;
use crate::constraints::Limits;
use crate::error::AgentError;
use crate::keys::{Backing, Held};
use crate::memory::MemoryKey;
use crate::tpmd::TpmdError;
use crate::wire::KeyBlob;

/// Where a key goes once it is known whether the TPM can hold it.
enum Placement {
    Tpm(Vec<u8>),
    /// Not in the TPM, and why.
    Elsewhere(String),
}

async fn place(
    agent: &Agent,
    keypair: &KeypairData,
    comment: &str,
) -> Result<Placement, AgentError> {
    let software = match software_key_from_ssh(keypair) {
        Ok(key) => key,
        Err(KeyReadError::UnsupportedKeyType(why)) => return Ok(Placement::Elsewhere(why)),
        Err(e) => {
            return Err(AgentError::BadRequest(format!(
                "refused key \"{comment}\": {e}"
            )))
        }
    };
    let software_ref = &software;
    let wrapped = agent
        .tpmd
        .call("wrap", move |proxy| async move {
            wrap_and_import(&proxy, software_ref, b"", tpmd_api::DEFAULT_SRK_HANDLE)
                .await
                .map_err(|e| match e {
                    WrapError::Daemon(d) => d,
                    // Built for this TPM's family, the duplicate cannot hold the key (a
                    // TPM 1.2 holds RSA only, up to 2048 bits).
                    WrapError::Unwrappable(why) => DaemonError::Unsupported(why),
                    other => DaemonError::InvalidArgument(other.to_string()),
                })
        })
        .await;
    match wrapped {
        Ok(pem) => Ok(Placement::Tpm(pem.into_bytes())),
        Err(TpmdError::Unsupported(why)) => Ok(Placement::Elsewhere(format!(
            "this TPM cannot hold it ({why})"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn add(agent: &Agent, frame: &[u8], session: &mut Session) -> Result<(), AgentError> {
    let AddRequest {
        keypair,
        cert,
        comment,
        constraints,
    } = parse_add(frame).map_err(AgentError::BadRequest)?;
    let limits = Limits::read(&constraints, agent.default_lifetime)?;
    let public = KeyData::try_from(&keypair)
        .map_err(|e| AgentError::BadRequest(format!("refused key \"{comment}\": {e}")))?;
    let key = match &cert {
        Some(cert) => KeyBlob::from_cert(cert),
        None => KeyBlob::from_key(&public).ok_or_else(|| {
            AgentError::BadRequest(format!("refused key \"{comment}\": cannot encode it"))
        })?,
    };
    let backing = match place(agent, &keypair, &comment).await? {
        Placement::Tpm(blob) => {
            let wrapped_public = tpmd_api::client::key_file_public(&blob)
                .ok()
                .and_then(|p| p.to_ssh_public_key(&comment).ok());
            if wrapped_public.as_ref().map(|p| p.key_data()) != Some(&public) {
                return Err(AgentError::BadRequest(format!(
                    "refused key \"{comment}\": the wrapped key does not match it"
                )));
            }
            if let Some(dir) = &agent.save_wrapped {
                let path = crate::save::save(dir, &comment, &public, &blob).map_err(AgentError::Save)?;
                info!("saved the wrapped key \"{comment}\" as {}", path.display());
            }
            info!(
                "added {} \"{comment}\", now held as a TPM-wrapped blob{}",
                key.describe(),
                limits.describe()
            );
            Backing::Tpm {
                takes_user_policies: tpmd_api::client::takes_user_policies(&blob),
                blob: Arc::new(blob),
                needs_auth: false,
            }
        }
        Placement::Elsewhere(why) => match agent.non_tpm_keys {
            NonTpmKeys::Memory => {
                let memory = MemoryKey::new(&keypair)?;
                info!(
                    "added {} \"{comment}\", kept in this agent's memory, not in the TPM: {why}{}",
                    key.describe(),
                    limits.describe()
                );
                Backing::Memory(Arc::new(memory))
            }
            NonTpmKeys::Upstream => {
                let Some(upstream) = session.upstream.as_mut() else {
                    return Err(AgentError::Unsupported(format!(
                        "refused key \"{comment}\": {why}, and no upstream agent is set"
                    )));
                };
                info!("key \"{comment}\" is not for the TPM ({why}); handing it to the upstream agent");
                return upstream
                    .request(frame, "refused the key or its constraints")
                    .await;
            }
            NonTpmKeys::Refuse => {
                return Err(AgentError::Unsupported(format!(
                    "refused key \"{comment}\": {why}; this agent takes TPM keys only (--non-tpm-keys refuse)"
                )))
            }
        },
    };
    agent.store_added(Held {
        key,
        comment,
        backing,
        confirm: limits.confirm,
        expires: limits.expires(),
        rules: Arc::new(limits.rules),
    });
    Ok(())
}
