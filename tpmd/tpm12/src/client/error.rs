//! The client's error: transport, TPM return codes, malformed responses, failed HMACs.

use crate::codec::{CodecError, ResponseError, TpmRc};
use crate::keys::KeyError;

use super::transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Tpm(TpmRc),
    #[error("malformed TPM 1.2 response: {0}")]
    Codec(CodecError),
    #[error("the TPM 1.2 response HMAC does not verify (wrong nonce, tampered response, or a wrong auth value); the response was discarded")]
    BadResponseHmac,
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("the {what} secret is wrong: tried {tried}; configure the {what} password (or take ownership with a well-known SRK: `tpm-keyctl srk create`)")]
    WellKnownFailed {
        what: &'static str,
        tried: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
}

impl From<ResponseError> for ClientError {
    fn from(e: ResponseError) -> ClientError {
        match e {
            ResponseError::Tpm(rc) => ClientError::Tpm(rc),
            ResponseError::Codec(c) => ClientError::Codec(c),
            ResponseError::BadResponseHmac => ClientError::BadResponseHmac,
        }
    }
}

impl From<CodecError> for ClientError {
    fn from(e: CodecError) -> ClientError {
        ClientError::Codec(e)
    }
}

impl ClientError {
    /// The TPM return code, if the TPM refused the command.
    pub fn rc(&self) -> Option<TpmRc> {
        match self {
            ClientError::Tpm(rc) => Some(*rc),
            _ => None,
        }
    }

    pub fn is_auth_failure(&self) -> bool {
        self.rc().is_some_and(TpmRc::is_auth_failure)
            || matches!(self, ClientError::WellKnownFailed { .. })
    }

    /// The TPM has no room for another key or session.
    pub fn is_out_of_space(&self) -> bool {
        self.rc().is_some_and(TpmRc::is_out_of_space)
    }

    pub fn is_retry(&self) -> bool {
        self.rc().is_some_and(TpmRc::is_retry)
    }

    /// A handle we held is gone (the TPM was reset or the key flushed).
    pub fn is_stale_handle(&self) -> bool {
        self.rc().is_some_and(TpmRc::is_stale_handle)
    }

    pub fn is_transport(&self) -> bool {
        matches!(self, ClientError::Transport(_))
    }
}
