//! What a signature for SSH user authentication signs (RFC 4252 section 7, and OpenSSH's
//! publickey-hostbound-v00@openssh.com which adds the server's host key): the session
//! identifier, the user, and the key. Anything else is not user authentication.

use ssh_agent_lib::ssh_encoding::{Decode, Reader};

use crate::wire::KeyBlob;

const SSH2_MSG_USERAUTH_REQUEST: u8 = 50;

pub struct UserAuth {
    pub session_id: Vec<u8>,
    pub user: String,
    /// The server's host key, in the hostbound method.
    pub host_key: Option<KeyBlob>,
}

/// Parses `data` as the user-authentication request to be signed with `key`.
pub fn parse(mut data: &[u8], key: &KeyBlob) -> Result<UserAuth, String> {
    let reader = &mut data;
    let bad = |what: &str| format!("not an SSH user authentication request ({what})");
    let session_id = Vec::<u8>::decode(reader).map_err(|_| bad("session identifier"))?;
    if session_id.is_empty() {
        return Err(bad("empty session identifier"));
    }
    if u8::decode(reader).map_err(|_| bad("message type"))? != SSH2_MSG_USERAUTH_REQUEST {
        return Err(bad("message type"));
    }
    let user = String::decode(reader).map_err(|_| bad("user"))?;
    let _service = String::decode(reader).map_err(|_| bad("service"))?;
    let method = String::decode(reader).map_err(|_| bad("method"))?;
    let hostbound = match method.as_str() {
        "publickey" => false,
        "publickey-hostbound-v00@openssh.com" => true,
        _ => return Err(bad("method")),
    };
    if u8::decode(reader).map_err(|_| bad("signature flag"))? == 0 {
        return Err(bad("signature flag"));
    }
    let _algorithm = String::decode(reader).map_err(|_| bad("algorithm"))?;
    let blob = Vec::<u8>::decode(reader).map_err(|_| bad("key"))?;
    if blob != key.blob {
        return Err(
            "the user authentication request names another key than the one asked to sign".into(),
        );
    }
    let host_key = if hostbound {
        let blob = Vec::<u8>::decode(reader).map_err(|_| bad("host key"))?;
        Some(KeyBlob::parse(blob)?)
    } else {
        None
    };
    if !reader.is_finished() {
        return Err(bad("trailing bytes"));
    }
    Ok(UserAuth {
        session_id,
        user,
        host_key,
    })
}
