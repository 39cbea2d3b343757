//! Another agent (OpenSSH's ssh-agent, gcr's) that keeps the keys a TPM cannot hold.
//! One short connection per request, so an upstream restart costs nothing.

use std::path::PathBuf;
use std::time::Duration;

use ssh_agent_lib::agent::Session;
use ssh_agent_lib::client::Client;
use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, Identity, RemoveIdentity, SignRequest,
};
use tokio::net::UnixStream;

use crate::error::AgentError;

/// An upstream agent that does not answer within this time is treated as absent.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Upstream {
    path: PathBuf,
}

fn fail(e: impl std::fmt::Display) -> AgentError {
    AgentError::Upstream(e.to_string())
}

impl Upstream {
    pub fn new(path: PathBuf) -> Upstream {
        Upstream { path }
    }

    async fn client(&self) -> Result<Client<UnixStream>, AgentError> {
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|e| fail(format!("cannot connect to {}: {e}", self.path.display())))?;
        Ok(Client::new(stream))
    }

    async fn with_timeout<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, AgentError>>,
    ) -> Result<T, AgentError> {
        tokio::time::timeout(TIMEOUT, op)
            .await
            .map_err(|_| fail(format!("{} did not answer", self.path.display())))?
    }

    pub async fn identities(&self) -> Result<Vec<Identity>, AgentError> {
        self.with_timeout(async {
            self.client()
                .await?
                .request_identities()
                .await
                .map_err(fail)
        })
        .await
    }

    pub async fn sign(&self, request: SignRequest) -> Result<ssh_key::Signature, AgentError> {
        self.with_timeout(async { self.client().await?.sign(request).await.map_err(fail) })
            .await
    }

    pub async fn add(&self, identity: AddIdentity) -> Result<(), AgentError> {
        self.with_timeout(async {
            self.client()
                .await?
                .add_identity(identity)
                .await
                .map_err(|_| fail("refused the key"))
        })
        .await
    }

    pub async fn add_constrained(
        &self,
        identity: AddIdentityConstrained,
    ) -> Result<(), AgentError> {
        self.with_timeout(async {
            self.client()
                .await?
                .add_identity_constrained(identity)
                .await
                .map_err(|_| fail("refused the key or its constraints"))
        })
        .await
    }

    pub async fn remove(&self, identity: RemoveIdentity) -> Result<(), AgentError> {
        self.with_timeout(async {
            self.client()
                .await?
                .remove_identity(identity)
                .await
                .map_err(|_| fail("does not hold the key"))
        })
        .await
    }

    pub async fn remove_all(&self) -> Result<(), AgentError> {
        self.with_timeout(async {
            self.client()
                .await?
                .remove_all_identities()
                .await
                .map_err(fail)
        })
        .await
    }

    pub async fn lock(&self, passphrase: String) -> Result<(), AgentError> {
        self.with_timeout(async { self.client().await?.lock(passphrase).await.map_err(fail) })
            .await
    }

    pub async fn unlock(&self, passphrase: String) -> Result<(), AgentError> {
        self.with_timeout(async { self.client().await?.unlock(passphrase).await.map_err(fail) })
            .await
    }
}
