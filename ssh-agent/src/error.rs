//! Why a request failed. Every variant is one readable line for the log; the client
//! only ever sees SSH_AGENT_FAILURE (the agent protocol has no error text), converted in
//! `connection.rs`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("the agent is locked; unlock it with `ssh-add -X`")]
    Locked,
    #[error("no key in this agent (or its upstream) matches the requested public key")]
    NoSuchKey,
    #[error("{0}")]
    Tpmd(#[from] crate::tpmd::TpmdError),
    #[error("{0}")]
    Unsupported(String),
    #[error("use of key \"{0}\" was not confirmed")]
    NotConfirmed(String),
    #[error("upstream agent: {0}")]
    Upstream(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("cannot save the wrapped key: {0}")]
    Save(std::io::Error),
    #[error("refused to {0} for a connection forwarded from another host (ssh -A); do it on the machine where the agent runs")]
    Forwarded(&'static str),
    #[error("refused to use key \"{key}\" here: {why}")]
    Restricted { key: String, why: String },
    #[error("{0}")]
    Pkcs11(String),
    #[error("this agent serves a fixed set of key files (--fixed-keys): keys cannot be added, removed or locked")]
    FixedKeys,
    #[error("SSH protocol 1 is not supported")]
    Protocol1,
    #[error("refused to unlock: a wrong passphrase was given {failures} time(s) in a row, so no passphrase is checked for another {wait_ms} ms")]
    UnlockThrottled { failures: u32, wait_ms: u128 },
}

/// Errors that stop the agent from starting: shown to the user as one line.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("socket {path}: {source}")]
    Socket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}
