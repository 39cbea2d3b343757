//! session-bind@openssh.com: the host key (a plain key or a host certificate), the
//! session identifier, the host's signature over it, and whether the connection is being
//! forwarded to that host or authenticates to it.

use ssh_agent_lib::ssh_encoding::{Decode, Reader};
use ssh_key::Signature;

use crate::wire::KeyBlob;

#[derive(Debug, Clone)]
pub struct Bind {
    pub host_key: KeyBlob,
    pub session_id: Vec<u8>,
    pub forwarding: bool,
}

impl Bind {
    /// Parses the extension's contents and checks the host's signature.
    pub fn parse(mut details: &[u8]) -> Result<Bind, String> {
        let bad = |e: &dyn std::fmt::Display| format!("malformed session-bind@openssh.com: {e}");
        let reader = &mut details;
        let host_key = Vec::<u8>::decode(reader).map_err(|e| bad(&e))?;
        let session_id = Vec::<u8>::decode(reader).map_err(|e| bad(&e))?;
        let signature = Vec::<u8>::decode(reader).map_err(|e| bad(&e))?;
        let forwarding = u8::decode(reader).map_err(|e| bad(&e))? != 0;
        if !reader.is_finished() {
            return Err(bad(&"trailing bytes"));
        }
        let host_key = KeyBlob::parse(host_key).map_err(|e| bad(&e))?;
        let signature = Signature::try_from(signature.as_slice()).map_err(|e| bad(&e))?;
        signature::Verifier::verify(&host_key.public, &session_id, &signature).map_err(|e| {
            format!("session-bind@openssh.com: the host key's signature does not verify ({e})")
        })?;
        Ok(Bind {
            host_key,
            session_id,
            forwarding,
        })
    }
}
