//! Another agent (OpenSSH's ssh-agent, gcr's) that keeps the keys this agent passes on.
//!
//! Each client connection gets its own connection upstream, opened on first use and
//! given the same `session-bind@openssh.com` messages the client sent us, in order. So
//! the upstream agent knows which host each connection authenticates to and whether it
//! arrived through forwarding, and applies the destination constraints (`ssh-add -h`) it
//! holds exactly as if the client had talked to it directly. Requests go upstream as the
//! client's own bytes, so certificates, constraints and extensions pass unchanged. A
//! connection that breaks (an upstream restart) is opened again and the bindings replayed.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::connection::MAX_MESSAGE;
use crate::error::AgentError;
use crate::wire;

/// An upstream agent that does not answer within this time is treated as absent.
const TIMEOUT: Duration = Duration::from_secs(10);

const SSH_AGENTC_REMOVE_ALL_IDENTITIES: u8 = 19;

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
            stream: None,
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
    stream: Option<UnixStream>,
    /// The client's session-bind messages, replayed on every (re)connection.
    binds: Vec<Vec<u8>>,
}

async fn exchange(stream: &mut UnixStream, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let framed = wire::frame(body).ok_or_else(|| std::io::Error::other("message too long"))?;
    stream.write_all(&framed).await?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > MAX_MESSAGE {
        return Err(std::io::Error::other(format!(
            "answered with a message of {len} bytes"
        )));
    }
    let mut reply = vec![0u8; len];
    stream.read_exact(&mut reply).await?;
    Ok(reply)
}

fn is_success(reply: &[u8]) -> bool {
    reply.first() == Some(&wire::SSH_AGENT_SUCCESS)
}

impl UpstreamLink {
    async fn connect(&self) -> Result<UnixStream, AgentError> {
        let mut stream = UnixStream::connect(&self.path)
            .await
            .map_err(|e| fail(format!("cannot connect to {}: {e}", self.path.display())))?;
        for bind in &self.binds {
            let reply = exchange(&mut stream, bind).await.map_err(fail)?;
            if !is_success(&reply) {
                // Replayed on every connection, where it is refused again: the upstream's
                // keys are then unusable on this connection, as they would be directly.
                return Err(fail(format!(
                    "{} refused this connection's session binding; its keys cannot be used here",
                    self.path.display()
                )));
            }
        }
        Ok(stream)
    }

    /// Sends one request (a message body) and returns the upstream agent's reply body.
    pub async fn call(&mut self, body: &[u8]) -> Result<Vec<u8>, AgentError> {
        let outcome = tokio::time::timeout(TIMEOUT, async {
            let mut stream = match self.stream.take() {
                Some(stream) => stream,
                None => self.connect().await?,
            };
            let reply = exchange(&mut stream, body).await.map_err(fail)?;
            self.stream = Some(stream);
            Ok(reply)
        })
        .await;
        outcome.unwrap_or_else(|_| Err(fail(format!("{} did not answer", self.path.display()))))
    }

    /// A request whose answer is success or failure.
    pub async fn request(&mut self, body: &[u8], refused: &str) -> Result<(), AgentError> {
        let reply = self.call(body).await?;
        if is_success(&reply) {
            Ok(())
        } else {
            Err(fail(refused))
        }
    }

    /// Records a session-bind the agent accepted and, if connected, passes it on now.
    pub async fn bind(&mut self, body: Vec<u8>) -> Result<(), AgentError> {
        self.binds.push(body.clone());
        if self.stream.is_none() {
            return Ok(());
        }
        let result = self.request(&body, "refused the session binding").await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    pub async fn identities(&mut self) -> Result<Vec<(Vec<u8>, String)>, AgentError> {
        let reply = self.call(&[wire::SSH_AGENTC_REQUEST_IDENTITIES]).await?;
        wire::decode_identities(&reply).map_err(fail)
    }

    pub async fn remove_all(&mut self) -> Result<(), AgentError> {
        self.request(
            &[SSH_AGENTC_REMOVE_ALL_IDENTITIES],
            "refused to remove its keys",
        )
        .await
    }
}
