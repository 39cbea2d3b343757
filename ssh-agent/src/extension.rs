//! Extension messages: `query`, `session-bind@openssh.com` (verified and recorded) and
//! `set-auth@tpmd.org` (a key's auth value, from `tpmd-ssh-agent --set-auth`).

use ssh_agent_lib::proto::extension::{QueryResponse, SessionBind};
use ssh_agent_lib::proto::{Extension, Response};
use tracing::{debug, info};

use crate::agent::{Agent, Reply, Session};
use crate::error::AgentError;
use crate::set_auth::SetAuth;

const EXTENSIONS: [&str; 3] = ["query", "session-bind@openssh.com", "set-auth@tpmd.org"];

impl Agent {
    pub(crate) fn extension(
        &self,
        extension: Extension,
        session: &mut Session,
    ) -> Result<Reply, AgentError> {
        let bad = |e: &dyn std::fmt::Display| {
            AgentError::BadRequest(format!("malformed {} extension: {e}", extension.name))
        };
        if extension.name == "query" {
            let response = Extension::new_message(QueryResponse {
                extensions: EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            })
            .map_err(|e| bad(&e))?;
            return Ok(Reply::Proto(Response::ExtensionResponse(response)));
        }
        if let Some(bind) = extension
            .parse_message::<SessionBind>()
            .map_err(|e| bad(&e))?
        {
            bind.verify_signature().map_err(|e| {
                AgentError::BadRequest(format!(
                    "session-bind@openssh.com: the host key's signature does not verify ({e})"
                ))
            })?;
            debug!(
                "connection of {} bound to host key {}{}",
                session.peer.describe(),
                bind.host_key.fingerprint(ssh_key::HashAlg::Sha256),
                if bind.is_forwarding {
                    " (forwarding)"
                } else {
                    ""
                }
            );
            session.bindings.push(bind.host_key);
            return Ok(Reply::Proto(Response::Success));
        }
        if let Some(set) = extension.parse_message::<SetAuth>().map_err(|e| bad(&e))? {
            if self.is_locked() {
                return Err(AgentError::Locked);
            }
            let Some(key) = self.find(&set.key) else {
                return Err(AgentError::NoSuchKey);
            };
            info!(
                "auth value for key \"{}\" given with --set-auth",
                key.comment
            );
            self.remember_auth(&set.key, set.auth, None);
            return Ok(Reply::Proto(Response::Success));
        }
        Err(AgentError::Unsupported(format!(
            "extension \"{}\" is not supported",
            extension.name
        )))
    }
}
