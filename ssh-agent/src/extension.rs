//! Extension messages: `query`, `session-bind@openssh.com` (verified, recorded, passed
//! to the upstream agent, and telling a forwarded connection apart) and
//! `set-auth@tpmd.org` (a key's auth value, from `tpmd-ssh-agent --set-auth`).

use ssh_agent_lib::proto::extension::{QueryResponse, SessionBind};
use ssh_agent_lib::proto::{Extension, Response};
use tracing::{debug, info, warn};

use crate::agent::{Agent, Reply, Session};
use crate::error::AgentError;
use crate::set_auth::SetAuth;

const EXTENSIONS: [&str; 3] = ["query", "session-bind@openssh.com", "set-auth@tpmd.org"];

/// OpenSSH's limit of bindings per connection (AGENT_MAX_SESSION_IDS): one per hop.
const MAX_BINDS: usize = 16;

impl Agent {
    pub(crate) async fn extension(
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
            self.session_bind(bind, extension, session).await?;
            return Ok(Reply::Proto(Response::Success));
        }
        if let Some(set) = extension.parse_message::<SetAuth>().map_err(|e| bad(&e))? {
            session.refuse_if_forwarded("set auth values")?;
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

    async fn session_bind(
        &self,
        bind: SessionBind,
        raw: Extension,
        session: &mut Session,
    ) -> Result<(), AgentError> {
        bind.verify_signature().map_err(|e| {
            AgentError::BadRequest(format!(
                "session-bind@openssh.com: the host key's signature does not verify ({e})"
            ))
        })?;
        if session.bound_for_auth {
            return Err(AgentError::BadRequest(
                "session-bind@openssh.com on a connection already bound for authentication".into(),
            ));
        }
        if session.binds >= MAX_BINDS {
            return Err(AgentError::BadRequest(format!(
                "session-bind@openssh.com: more than {MAX_BINDS} on one connection"
            )));
        }
        session.binds += 1;
        session.bound_for_auth = !bind.is_forwarding;
        let host = bind
            .host_key
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string();
        if bind.is_forwarding && session.forwarded_to.is_none() {
            info!(
                "connection of {} is forwarded to host {host} (ssh -A): it may list keys and sign, not add keys or set auth values",
                session.peer.describe()
            );
            session.forwarded_to = Some(host);
        } else {
            debug!(
                "connection of {} bound to host key {host}{}",
                session.describe(),
                if bind.is_forwarding {
                    " (forwarding)"
                } else {
                    ""
                }
            );
        }
        if let Some(upstream) = session.upstream.as_mut() {
            if let Err(e) = upstream.bind(raw).await {
                warn!("passing the session binding upstream: {e}");
            }
        }
        Ok(())
    }
}
