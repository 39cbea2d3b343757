//! One client connection: length-prefixed frames (at most 256 KiB, as OpenSSH), each
//! decoded by ssh-agent-lib from exactly its own bytes. A malformed message gets
//! SSH_AGENT_FAILURE; an oversized or truncated one closes the connection. Nothing a
//! client sends can stop the agent or other clients.

use std::sync::Arc;

use ssh_agent_lib::proto::Response;
use ssh_agent_lib::ssh_encoding::Encode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::agent::{Agent, Reply};
use crate::error::AgentError;
use crate::socket::Peer;
use crate::wire;

/// OpenSSH's limit (AGENT_MAX_LEN).
pub const MAX_MESSAGE: usize = 256 * 1024;

fn encode_response(response: &Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    response.encode(&mut body).ok()?;
    wire::frame(&body)
}

fn encode(reply: Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::Identities(identities) => wire::frame(&wire::encode_identities(&identities)?),
        Reply::Proto(response) => encode_response(&response),
        Reply::Signature(signed) => wire::frame(&wire::encode_sign_response(&signed.to_blob()?)?),
        Reply::Raw(body) => wire::frame(&body),
    }
}

/// Names a request by its message type, for the log.
fn name(kind: u8) -> &'static str {
    match kind {
        11 => "list keys",
        13 => "sign",
        17 | 25 => "add key",
        18 => "remove key",
        19 => "remove all keys",
        20 | 26 => "add PKCS#11 provider",
        21 => "remove PKCS#11 provider",
        22 => "lock",
        23 => "unlock",
        27 => "extension",
        _ => "request",
    }
}

pub async fn serve(agent: Arc<Agent>, mut stream: UnixStream, peer: Peer) {
    let mut session = agent.session(peer);
    loop {
        // Who the peer is (read from /proc, and a session-bind can reveal forwarding at
        // any point) is worked out only for a log line, not for every request.
        let mut header = [0u8; 4];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(header) as usize;
        if len == 0 || len > MAX_MESSAGE {
            let who = session.describe();
            warn!("closing the connection of {who}: a message of {len} bytes (the limit is {MAX_MESSAGE})");
            return;
        }
        // Added keys arrive in these bytes: wiped when done.
        let mut frame = Zeroizing::new(vec![0u8; len]);
        if stream.read_exact(&mut frame).await.is_err() {
            debug!(
                "{} closed the connection in the middle of a message",
                session.describe()
            );
            return;
        }
        let what = name(frame[0]);
        let reply = match agent.handle(&frame, &mut session).await {
            Ok(reply) => reply,
            Err(AgentError::Protocol1) => Reply::Proto(Response::Failure),
            Err(e) => {
                warn!("{what} for {} failed: {e}", session.describe());
                Reply::Proto(Response::Failure)
            }
        };
        drop(frame);
        let Some(bytes) = encode(reply) else {
            warn!(
                "cannot encode the reply for {}; closing the connection",
                session.describe()
            );
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
    use crate::sign::Signed;

    #[test]
    fn identities_from_blobs_match_ssh_agent_lib_for_plain_keys() {
        use ssh_agent_lib::proto::Identity;
        let secret = p256::SecretKey::from_slice(&[9u8; 32]).unwrap();
        let verifying = p256::ecdsa::VerifyingKey::from(secret.public_key());
        let key =
            ssh_key::public::KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::from(&verifying));
        let mut blob = Vec::new();
        key.encode(&mut blob).unwrap();
        let ours = encode(Reply::Identities(vec![(blob, "c".into())])).unwrap();
        let theirs = encode_response(&Response::IdentitiesAnswer(vec![Identity {
            pubkey: key,
            comment: "c".into(),
        }]))
        .unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn raw_signature_frame_matches_the_wire_format() {
        let bytes = encode(Reply::Signature(Signed::Raw {
            algorithm: "ssh-rsa".into(),
            blob: vec![1, 2, 3],
        }))
        .unwrap();
        let mut want = vec![0, 0, 0, 23, 14, 0, 0, 0, 18, 0, 0, 0, 7];
        want.extend_from_slice(b"ssh-rsa");
        want.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(bytes, want);
    }
}
