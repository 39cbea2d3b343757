//! The helper process (`tpmd-ssh-agent --pkcs11-helper`): loads one provider when told,
//! then signs with its keys until its stdin closes. It runs hardened as the agent does
//! (no core dumps, no ptrace) and logs to the agent's stderr.

use std::io::{stdin, stdout};
use std::path::Path;

use ssh_agent_lib::ssh_encoding::Encode;
use zeroize::Zeroizing;

use super::protocol::{self, failure, message, read_frame, write_frame};
use super::token::Token;
use crate::wire::KeyBlob;

fn keys_message(token: &Token) -> Option<Vec<u8>> {
    let mut body = vec![protocol::KEYS];
    u32::try_from(token.keys.len())
        .ok()?
        .encode(&mut body)
        .ok()?;
    for key in &token.keys {
        KeyBlob::from_key(&key.public)?
            .blob
            .as_slice()
            .encode(&mut body)
            .ok()?;
        key.label.as_str().encode(&mut body).ok()?;
    }
    Some(body)
}

fn answer(token: &mut Option<Token>, request: &[u8]) -> Vec<u8> {
    let Some((&kind, rest)) = request.split_first() else {
        return failure("empty message");
    };
    match (kind, token.as_ref()) {
        (protocol::LOAD, None) => {
            let (parts, _) = match protocol::strings(rest, 2) {
                Ok(parts) => parts,
                Err(e) => return failure(&e),
            };
            let provider = String::from_utf8_lossy(&parts[0]).into_owned();
            let pin = Zeroizing::new(String::from_utf8_lossy(&parts[1]).into_owned());
            match Token::load(Path::new(&provider), &pin) {
                Ok(loaded) => {
                    let reply =
                        keys_message(&loaded).unwrap_or_else(|| failure("cannot encode the keys"));
                    *token = Some(loaded);
                    reply
                }
                Err(e) => failure(&e),
            }
        }
        (protocol::SIGN, Some(loaded)) => {
            let signed = protocol::strings(rest, 2).and_then(|(parts, tail)| {
                let flags = protocol::read_u32(tail)?;
                let key = KeyBlob::parse(parts[0].clone())?;
                loaded.sign(&key.public, &parts[1], flags)
            });
            match signed.and_then(|s| {
                s.to_blob()
                    .ok_or_else(|| "cannot encode the signature".into())
            }) {
                Ok(blob) => message(protocol::SIGNATURE, &[&blob], None)
                    .unwrap_or_else(|| failure("cannot encode the signature")),
                Err(e) => failure(&e),
            }
        }
        (protocol::LOAD, Some(_)) => failure("a provider is already loaded"),
        _ => failure("no provider loaded, or an unknown request"),
    }
}

/// The helper's main loop; returns when the agent closes stdin.
pub fn run() -> Result<(), String> {
    crate::memory::harden_process();
    let (mut input, mut output) = (stdin().lock(), stdout().lock());
    let mut token = None;
    while let Some(request) =
        read_frame(&mut input).map_err(|e| format!("reading a request: {e}"))?
    {
        let request = Zeroizing::new(request);
        let reply = answer(&mut token, &request);
        write_frame(&mut output, &reply).map_err(|e| format!("answering: {e}"))?;
    }
    Ok(())
}
