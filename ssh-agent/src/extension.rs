//! Extension messages: `query`, `session-bind@openssh.com` (verified, recorded, passed
//! to the upstream agent, and telling a forwarded connection apart) and
//! `set-auth@tpmd.org` (a key's auth value, from `tpmd-ssh-agent --set-auth`).

use ssh_agent_lib::proto::extension::QueryResponse;
use ssh_agent_lib::proto::{Extension, Response};
use tracing::{debug, info, warn};

use ssh_agent_lib::ssh_encoding::Encode;

use crate::agent::{Agent, Reply, Session};
use crate::destination::Bind;
use crate::error::AgentError;
use crate::set_auth::SetAuth;

const EXTENSIONS: [&str; 3] = ["query", "session-bind@openssh.com", "set-auth@tpmd.org"];

/// OpenSSH's limit of bindings per connection (AGENT_MAX_SESSION_IDS): one per hop.
const MAX_BINDS: usize = 16;

/// SSH_AGENTC_EXTENSION, to pass a binding upstream as the client sent it.
const EXTENSION: u8 = 27;

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
        if extension.name == "session-bind@openssh.com" {
            let bind = Bind::parse(extension.details.as_ref()).map_err(AgentError::BadRequest)?;
            self.session_bind(bind, &extension, session).await?;
            return Ok(Reply::Proto(Response::Success));
        }
        if let Some(set) = extension.parse_message::<SetAuth>().map_err(|e| bad(&e))? {
            session.refuse_if_forwarded("set auth values")?;
            if self.is_locked() {
                return Err(AgentError::Locked);
            }
            let Some(blob) = crate::wire::KeyBlob::from_key(&set.key) else {
                return Err(AgentError::NoSuchKey);
            };
            let Some(key) = self.find(&blob.blob) else {
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
        bind: Bind,
        raw: &Extension,
        session: &mut Session,
    ) -> Result<(), AgentError> {
        for earlier in &session.binds {
            if !earlier.forwarding {
                return Err(AgentError::BadRequest(
                    "session-bind@openssh.com on a connection already bound for authentication"
                        .into(),
                ));
            }
            if earlier.session_id == bind.session_id {
                if earlier.host_key.blob == bind.host_key.blob {
                    // The same binding again: nothing new to record.
                    return Ok(());
                }
                return Err(AgentError::BadRequest(
                    "session-bind@openssh.com: a session already bound to another host key".into(),
                ));
            }
        }
        if session.binds.len() >= MAX_BINDS {
            return Err(AgentError::BadRequest(format!(
                "session-bind@openssh.com: more than {MAX_BINDS} on one connection"
            )));
        }
        let host = bind
            .host_key
            .public
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string();
        if bind.forwarding && session.forwarded_to.is_none() {
            info!(
                "connection of {} is forwarded to host {host} (ssh -A): it may list keys and sign, not add keys or set auth values",
                session.peer.describe()
            );
            session.forwarded_to = Some(host);
        } else {
            debug!(
                "connection of {} bound to host key {host}{}",
                session.describe(),
                if bind.forwarding { " (forwarding)" } else { "" }
            );
        }
        session.binds.push(bind);
        if let Some(upstream) = session.upstream.as_mut() {
            let mut body = vec![EXTENSION];
            if raw.encode(&mut body).is_ok() {
                if let Err(e) = upstream.bind(body).await {
                    warn!("passing the session binding upstream: {e}");
                }
            }
        }
        Ok(())
    }
}
