//! One client connection: length-prefixed frames (at most 256 KiB, as OpenSSH), each
//! decoded by ssh-agent-lib from exactly its own bytes. A malformed message gets
//! SSH_AGENT_FAILURE; an oversized or truncated one closes the connection. Nothing a
//! client sends can stop the agent or other clients.

use std::sync::Arc;

use ssh_agent_lib::proto::{Request, Response};
use ssh_agent_lib::ssh_encoding::{Decode, Encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::agent::{Agent, Reply};
use crate::sign::Signed;
use crate::socket::Peer;

/// OpenSSH's limit (AGENT_MAX_LEN).
pub const MAX_MESSAGE: usize = 256 * 1024;

const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;

fn name(request: &Request) -> &'static str {
    match request {
        Request::RequestIdentities => "list keys",
        Request::SignRequest(_) => "sign",
        Request::AddIdentity(_) | Request::AddIdConstrained(_) => "add key",
        Request::RemoveIdentity(_) => "remove key",
        Request::RemoveAllIdentities => "remove all keys",
        Request::AddSmartcardKey(_) | Request::AddSmartcardKeyConstrained(_) => "add smartcard",
        Request::RemoveSmartcardKey(_) => "remove smartcard",
        Request::Lock(_) => "lock",
        Request::Unlock(_) => "unlock",
        Request::Extension(_) => "extension",
    }
}

fn encode_response(response: &Response) -> Option<Vec<u8>> {
    let len = u32::try_from(response.encoded_len().ok()?).ok()?;
    let mut out = Vec::with_capacity(len as usize + 4);
    len.encode(&mut out).ok()?;
    response.encode(&mut out).ok()?;
    Some(out)
}

/// A sign response built from an algorithm name and blob (see [`Signed::Raw`]).
fn encode_raw_signature(algorithm: &str, blob: &[u8]) -> Option<Vec<u8>> {
    let mut signature = Vec::new();
    algorithm.encode(&mut signature).ok()?;
    blob.encode(&mut signature).ok()?;
    let mut body = vec![SSH_AGENT_SIGN_RESPONSE];
    signature.as_slice().encode(&mut body).ok()?;
    let mut out = Vec::new();
    u32::try_from(body.len()).ok()?.encode(&mut out).ok()?;
    out.extend_from_slice(&body);
    Some(out)
}

/// SSH_AGENT_IDENTITIES_ANSWER from blobs, so that certificates can be listed.
fn encode_identities(identities: &[(Vec<u8>, String)]) -> Option<Vec<u8>> {
    let mut body = vec![SSH_AGENT_IDENTITIES_ANSWER];
    u32::try_from(identities.len())
        .ok()?
        .encode(&mut body)
        .ok()?;
    for (blob, comment) in identities {
        blob.as_slice().encode(&mut body).ok()?;
        comment.as_str().encode(&mut body).ok()?;
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    u32::try_from(body.len()).ok()?.encode(&mut out).ok()?;
    out.extend_from_slice(&body);
    Some(out)
}

fn encode(reply: Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::Identities(identities) => encode_identities(&identities),
        Reply::Proto(response) => encode_response(&response),
        Reply::Signature(Signed::Ssh(signature)) => {
            encode_response(&Response::SignResponse(signature))
        }
        Reply::Signature(Signed::Raw { algorithm, blob }) => {
            encode_raw_signature(&algorithm, &blob)
        }
    }
}

pub async fn serve(agent: Arc<Agent>, mut stream: UnixStream, peer: Peer) {
    let mut session = agent.session(peer);
    loop {
        // Re-read each time: a session-bind can reveal forwarding at any point.
        let who = session.describe();
        let mut header = [0u8; 4];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(header) as usize;
        if len == 0 || len > MAX_MESSAGE {
            warn!("closing the connection of {who}: a message of {len} bytes (the limit is {MAX_MESSAGE})");
            return;
        }
        // Added keys arrive in these bytes: wiped when done.
        let mut frame = Zeroizing::new(vec![0u8; len]);
        if stream.read_exact(&mut frame).await.is_err() {
            debug!("{who} closed the connection in the middle of a message");
            return;
        }
        let decoded = match crate::cert::sign_request_with_certificate(&frame) {
            Some(request) => Ok(Request::SignRequest(request)),
            None => Request::decode(&mut frame.as_slice()),
        };
        let reply = match decoded {
            Ok(request) => {
                let what = name(&request);
                match agent.handle(request, &mut session).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        warn!("{what} for {who} failed: {e}");
                        Reply::Proto(Response::Failure)
                    }
                }
            }
            Err(e) => {
                warn!(
                    "malformed or unsupported request (type {}) from {who}: {e}; answered SSH_AGENT_FAILURE",
                    frame[0]
                );
                Reply::Proto(Response::Failure)
            }
        };
        drop(frame);
        let Some(bytes) = encode(reply) else {
            warn!("cannot encode the reply for {who}; closing the connection");
            return;
        };
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn identities_from_blobs_match_ssh_agent_lib_for_plain_keys() {
        use ssh_agent_lib::proto::Identity;
        let secret = p256::SecretKey::from_slice(&[9u8; 32]).unwrap();
        let verifying = p256::ecdsa::VerifyingKey::from(secret.public_key());
        let key =
            ssh_key::public::KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::from(&verifying));
        let mut blob = Vec::new();
        key.encode(&mut blob).unwrap();
        let ours = encode_identities(&[(blob, "c".into())]).unwrap();
        let theirs = encode_response(&Response::IdentitiesAnswer(vec![Identity {
            pubkey: key,
            comment: "c".into(),
        }]))
        .unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn raw_signature_frame_matches_the_wire_format() {
        let bytes = encode_raw_signature("ssh-rsa", &[1, 2, 3]).unwrap();
        let mut want = vec![0, 0, 0, 23, 14, 0, 0, 0, 18, 0, 0, 0, 7];
        want.extend_from_slice(b"ssh-rsa");
        want.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(bytes, want);
    }
}
