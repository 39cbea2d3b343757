//! ssh-add of a software key: wrapped for this TPM on the spot (the duplicate is built
//! here, tpmd only imports it), only the wrapped blob is kept, and the private key is
//! zeroized when the request is dropped. Keys a TPM cannot hold go to the upstream agent.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssh_agent_lib::proto::{AddIdentity, AddIdentityConstrained, Credential, KeyConstraint};
use tpmd_api::client::{wrap_and_import, WrapError};
use tpmd_api::privkey::{software_key_from_ssh, KeyReadError};
use tpmd_api::DaemonError;
use tracing::info;

use crate::agent::Agent;
use crate::error::AgentError;
use crate::keys::TpmKey;
use crate::upstream::UpstreamLink;

struct Constraints {
    confirm: bool,
    lifetime: Option<Duration>,
}

fn read_constraints(constraints: &[KeyConstraint]) -> Result<Constraints, AgentError> {
    let mut out = Constraints {
        confirm: false,
        lifetime: None,
    };
    for constraint in constraints {
        match constraint {
            KeyConstraint::Lifetime(seconds) => {
                out.lifetime = Some(Duration::from_secs(u64::from(*seconds)))
            }
            KeyConstraint::Confirm => out.confirm = true,
            KeyConstraint::Extension(ext) => {
                return Err(AgentError::Unsupported(format!(
                    "key constraint \"{}\" is not supported; add the key without it",
                    ext.name
                )))
            }
        }
    }
    Ok(out)
}

/// `upstream`: the connection's own link to the upstream agent, which takes the keys a
/// TPM cannot hold, with their constraints (destination constraints included) untouched.
pub async fn add(
    agent: &Agent,
    identity: AddIdentity,
    constraints: Vec<KeyConstraint>,
    upstream: Option<&mut UpstreamLink>,
) -> Result<(), AgentError> {
    let (privkey, comment) = match &identity.credential {
        Credential::Key { privkey, comment } => (privkey, comment.clone()),
        Credential::Cert { .. } => {
            return Err(AgentError::Unsupported(
                "adding a certificate with its key is not supported; put KEY-cert.pub beside a TPM key file instead".into(),
            ))
        }
    };
    let software = match software_key_from_ssh(privkey) {
        Ok(key) => key,
        Err(KeyReadError::UnsupportedKeyType(why)) => {
            let Some(upstream) = upstream else {
                return Err(AgentError::Unsupported(format!(
                    "refused key \"{comment}\": {why}; or start the agent with --upstream SOCKET to keep such keys in another agent"
                )));
            };
            info!("key \"{comment}\" cannot live in a TPM; handing it to the upstream agent");
            return if constraints.is_empty() {
                upstream.add(identity).await
            } else {
                upstream
                    .add_constrained(AddIdentityConstrained {
                        identity,
                        constraints,
                    })
                    .await
            };
        }
        Err(e) => {
            return Err(AgentError::BadRequest(format!(
                "refused key \"{comment}\": {e}"
            )))
        }
    };
    let limits = read_constraints(&constraints)?;
    let public = software
        .public_ssh()
        .map_err(|e| AgentError::BadRequest(format!("refused key \"{comment}\": {e}")))?;
    let software_ref = &software;
    let pem = agent
        .tpmd
        .call("wrap", move |proxy| async move {
            wrap_and_import(&proxy, software_ref, b"", tpmd_api::DEFAULT_SRK_HANDLE)
                .await
                .map_err(|e| match e {
                    WrapError::Daemon(d) => d,
                    other => DaemonError::InvalidArgument(other.to_string()),
                })
        })
        .await?;
    drop(software);
    drop(identity);
    let blob = pem.into_bytes();
    let wrapped_public = tpmd_api::client::key_file_public(&blob)
        .ok()
        .and_then(|p| p.to_ssh_public_key(&comment).ok());
    if wrapped_public.as_ref().map(|p| p.key_data()) != Some(&public) {
        return Err(AgentError::BadRequest(format!(
            "refused key \"{comment}\": the wrapped key does not match it"
        )));
    }
    if let Some(dir) = &agent.save_wrapped {
        let path = save(dir, &comment, &public, &blob).map_err(AgentError::Save)?;
        info!("saved the wrapped key \"{comment}\" as {}", path.display());
    }
    info!(
        "added key \"{comment}\" ({}), now held as a TPM-wrapped blob{}{}",
        public.fingerprint(ssh_key::HashAlg::Sha256),
        if limits.confirm {
            ", confirm each use"
        } else {
            ""
        },
        limits
            .lifetime
            .map(|l| format!(", lifetime {}s", l.as_secs()))
            .unwrap_or_default()
    );
    agent.store_added(TpmKey {
        public,
        cert: None,
        comment,
        blob: Arc::new(blob),
        needs_auth: false,
        confirm: limits.confirm,
        expires: limits.lifetime.map(|l| Instant::now() + l),
    });
    Ok(())
}

/// A file name from the comment (or the fingerprint), unique in `dir`.
fn save(
    dir: &Path,
    comment: &str,
    public: &ssh_key::public::KeyData,
    blob: &[u8],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut stem: String = comment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.trim_matches(['_', '.']).is_empty() {
        stem = public
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect();
    }
    let mut path = dir.join(format!("{stem}.tpm"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{stem}-{n}.tpm"));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(blob)?;
    let openssh = ssh_key::PublicKey::new(public.clone(), comment)
        .to_openssh()
        .map_err(std::io::Error::other)?;
    std::fs::write(path.with_extension("pub"), format!("{openssh}\n"))?;
    Ok(path)
}
