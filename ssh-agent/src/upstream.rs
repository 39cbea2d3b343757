//! Another agent (OpenSSH's ssh-agent, gcr's) that keeps the keys a TPM cannot hold.
//!
//! Each client connection gets its own connection upstream, opened on first use and
//! given the same `session-bind@openssh.com` messages the client sent us, in order. So
//! the upstream agent knows which host each connection authenticates to and whether it
//! arrived through forwarding, and applies the destination constraints (`ssh-add -h`) it
//! holds exactly as if the client had talked to it directly. A connection that breaks
//! (an upstream restart) is opened again and the bindings replayed.

use std::path::PathBuf;
use std::time::Duration;

use ssh_agent_lib::agent::Session;
use ssh_agent_lib::client::Client;
use ssh_agent_lib::error::AgentError as LibError;
use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, Extension, Identity, RemoveIdentity, SignRequest,
};
use tokio::net::UnixStream;

use crate::error::AgentError;

/// An upstream agent that does not answer within this time is treated as absent.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where the upstream agent listens; shared by all connections.
pub struct Upstream {
    path: PathBuf,
}

impl Upstream {
    pub fn new(path: PathBuf) -> Upstream {
        Upstream { path }
    }

    /// The upstream side of one new client connection (not connected yet).
    pub fn link(&self) -> UpstreamLink {
        UpstreamLink {
            path: self.path.clone(),
            client: None,
            binds: Vec::new(),
        }
    }
}

fn fail(e: impl std::fmt::Display) -> AgentError {
    AgentError::Upstream(e.to_string())
}

/// One client connection's own connection to the upstream agent.
pub struct UpstreamLink {
    path: PathBuf,
    client: Option<Client<UnixStream>>,
    /// The client's session-bind messages, replayed on every (re)connection.
    binds: Vec<Extension>,
}

/// What one upstream call came to: `Err` outside if connecting (or replaying the
/// bindings) failed, else the upstream agent's own answer.
type Outcome<T> = Result<Result<T, LibError>, AgentError>;

/// Runs `$call` on the connected client `$c`, with the timeout, and settles the result.
macro_rules! upstream_call {
    ($link:expr, $refused:expr, |$c:ident| $call:expr) => {{
        let outcome = tokio::time::timeout(TIMEOUT, async {
            let $c = $link.connected().await?;
            Ok($call.await)
        })
        .await;
        $link.settle(outcome, $refused)
    }};
}

impl UpstreamLink {
    async fn connected(&mut self) -> Result<&mut Client<UnixStream>, AgentError> {
        let client = match self.client.take() {
            Some(client) => client,
            None => {
                let stream = UnixStream::connect(&self.path)
                    .await
                    .map_err(|e| fail(format!("cannot connect to {}: {e}", self.path.display())))?;
                let mut client = Client::new(stream);
                for bind in &self.binds {
                    client.extension(bind.clone()).await.map_err(|e| {
                        fail(format!(
                            "{} refused this connection's session binding ({e}); its keys cannot be used here",
                            self.path.display()
                        ))
                    })?;
                }
                client
            }
        };
        Ok(self.client.insert(client))
    }

    /// Keeps the connection after a plain refusal (SSH_AGENT_FAILURE); drops it after
    /// anything else, so the next call starts afresh.
    fn settle<T>(
        &mut self,
        outcome: Result<Outcome<T>, tokio::time::error::Elapsed>,
        refused: &str,
    ) -> Result<T, AgentError> {
        match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(LibError::Failure | LibError::ExtensionFailure))) => Err(fail(refused)),
            Ok(Ok(Err(e))) => {
                self.client = None;
                Err(fail(e))
            }
            Ok(Err(e)) => {
                self.client = None;
                Err(e)
            }
            Err(_) => {
                self.client = None;
                Err(fail(format!("{} did not answer", self.path.display())))
            }
        }
    }

    /// Records a session-bind the agent accepted and, if connected, passes it on now.
    pub async fn bind(&mut self, bind: Extension) -> Result<(), AgentError> {
        self.binds.push(bind.clone());
        if self.client.is_none() {
            return Ok(());
        }
        let result = upstream_call!(self, "refused the session binding", |c| c.extension(bind));
        if result.is_err() {
            // Replayed on the next connection, where it is refused again: the upstream's
            // keys are then unusable on this connection, as they would be directly.
            self.client = None;
        }
        result.map(|_| ())
    }

    pub async fn identities(&mut self) -> Result<Vec<Identity>, AgentError> {
        upstream_call!(self, "refused to list its keys", |c| c.request_identities())
    }

    pub async fn sign(&mut self, request: SignRequest) -> Result<ssh_key::Signature, AgentError> {
        upstream_call!(
            self,
            "refused to sign (a destination constraint, or no such key)",
            |c| c.sign(request)
        )
    }

    pub async fn add(&mut self, identity: AddIdentity) -> Result<(), AgentError> {
        upstream_call!(self, "refused the key", |c| c.add_identity(identity))
    }

    pub async fn add_constrained(
        &mut self,
        identity: AddIdentityConstrained,
    ) -> Result<(), AgentError> {
        upstream_call!(self, "refused the key or its constraints", |c| c
            .add_identity_constrained(identity))
    }

    pub async fn remove(&mut self, identity: RemoveIdentity) -> Result<(), AgentError> {
        upstream_call!(self, "does not hold the key", |c| c
            .remove_identity(identity))
    }

    pub async fn remove_all(&mut self) -> Result<(), AgentError> {
        upstream_call!(self, "refused to remove its keys", |c| c
            .remove_all_identities())
    }

    pub async fn lock(&mut self, passphrase: String) -> Result<(), AgentError> {
        upstream_call!(self, "refused to lock", |c| c.lock(passphrase))
    }

    pub async fn unlock(&mut self, passphrase: String) -> Result<(), AgentError> {
        upstream_call!(self, "refused to unlock", |c| c.unlock(passphrase))
    }
}
