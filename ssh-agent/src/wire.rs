//! The parts of the agent protocol the agent reads and writes itself rather than through
//! ssh-agent-lib 0.5, whose messages carry plain public keys only: key blobs that may be
//! certificates (sign, remove, session-bind host keys, listings) and raw frames passed
//! to the upstream agent unchanged. Parsing uses ssh-key's codecs.

use ssh_agent_lib::ssh_encoding::{Decode, Encode, Reader};
use ssh_key::public::KeyData;

use crate::certificate::{Cert, CERT_SUFFIX};

pub const SSH_AGENT_SUCCESS: u8 = 6;
pub const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
pub const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
pub const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
pub const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
pub const SSH_AGENTC_REMOVE_IDENTITY: u8 = 18;

/// A public key blob as it travels in the protocol: a plain key or a certificate, with
/// the key that signs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBlob {
    pub blob: Vec<u8>,
    /// The plain key (a certificate's subject key).
    pub public: KeyData,
    pub cert: Option<Box<Cert>>,
}

impl KeyBlob {
    pub fn parse(blob: Vec<u8>) -> Result<KeyBlob, String> {
        let algorithm = String::decode(&mut blob.as_slice())
            .map_err(|e| format!("unreadable key blob: {e}"))?;
        if algorithm.ends_with(CERT_SUFFIX) {
            let cert = Cert::parse(blob.clone())?;
            return Ok(KeyBlob {
                public: cert.key.clone(),
                cert: Some(Box::new(cert)),
                blob,
            });
        }
        let mut reader = blob.as_slice();
        let public =
            KeyData::decode(&mut reader).map_err(|e| format!("unreadable {algorithm} key: {e}"))?;
        if !reader.is_finished() {
            return Err(format!("{algorithm} key blob has trailing bytes"));
        }
        Ok(KeyBlob {
            public,
            cert: None,
            blob,
        })
    }

    pub fn from_key(public: &KeyData) -> Option<KeyBlob> {
        let mut blob = Vec::new();
        public.encode(&mut blob).ok()?;
        Some(KeyBlob {
            blob,
            public: public.clone(),
            cert: None,
        })
    }

    pub fn from_cert(cert: &Cert) -> KeyBlob {
        KeyBlob {
            blob: cert.blob.clone(),
            public: cert.key.clone(),
            cert: Some(Box::new(cert.clone())),
        }
    }

    /// "ssh-ed25519 SHA256:..." or "ssh-ed25519-cert-v01@openssh.com SHA256:...", for logs.
    pub fn describe(&self) -> String {
        let kind = match &self.cert {
            Some(cert) => cert.algorithm.clone(),
            None => self.public.algorithm().as_str().to_string(),
        };
        format!(
            "{kind} {}",
            self.public.fingerprint(ssh_key::HashAlg::Sha256)
        )
    }
}

/// SSH_AGENTC_SIGN_REQUEST: key blob, data, flags.
pub struct SignRequest {
    pub key: KeyBlob,
    pub data: Vec<u8>,
    pub flags: u32,
}

fn body(frame: &[u8], kind: u8) -> Option<&[u8]> {
    let (&first, rest) = frame.split_first()?;
    (first == kind).then_some(rest)
}

pub fn parse_sign(frame: &[u8]) -> Result<SignRequest, String> {
    let mut reader = body(frame, SSH_AGENTC_SIGN_REQUEST).ok_or("not a sign request")?;
    let bad = |e: &dyn std::fmt::Display| format!("malformed sign request: {e}");
    let blob = Vec::<u8>::decode(&mut reader).map_err(|e| bad(&e))?;
    let data = Vec::<u8>::decode(&mut reader).map_err(|e| bad(&e))?;
    let flags = u32::decode(&mut reader).map_err(|e| bad(&e))?;
    if !reader.is_finished() {
        return Err(bad(&"trailing bytes"));
    }
    Ok(SignRequest {
        key: KeyBlob::parse(blob)?,
        data,
        flags,
    })
}

pub fn parse_remove(frame: &[u8]) -> Result<KeyBlob, String> {
    let mut reader = body(frame, SSH_AGENTC_REMOVE_IDENTITY).ok_or("not a remove request")?;
    let blob =
        Vec::<u8>::decode(&mut reader).map_err(|e| format!("malformed remove request: {e}"))?;
    if !reader.is_finished() {
        return Err("malformed remove request: trailing bytes".into());
    }
    KeyBlob::parse(blob)
}

/// A length-prefixed frame around `body`.
pub fn frame(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 4);
    u32::try_from(body.len()).ok()?.encode(&mut out).ok()?;
    out.extend_from_slice(body);
    Some(out)
}

/// The body of SSH_AGENT_IDENTITIES_ANSWER.
pub fn encode_identities(identities: &[(Vec<u8>, String)]) -> Option<Vec<u8>> {
    let mut body = vec![SSH_AGENT_IDENTITIES_ANSWER];
    u32::try_from(identities.len())
        .ok()?
        .encode(&mut body)
        .ok()?;
    for (blob, comment) in identities {
        blob.as_slice().encode(&mut body).ok()?;
        comment.as_str().encode(&mut body).ok()?;
    }
    Some(body)
}

/// The (blob, comment) pairs of an SSH_AGENT_IDENTITIES_ANSWER body.
pub fn decode_identities(body: &[u8]) -> Result<Vec<(Vec<u8>, String)>, String> {
    let mut reader = self::body(body, SSH_AGENT_IDENTITIES_ANSWER)
        .ok_or_else(|| format!("answered message type {:?}", body.first()))?;
    let bad = |e: &dyn std::fmt::Display| format!("malformed identities answer: {e}");
    let count = u32::decode(&mut reader).map_err(|e| bad(&e))?;
    let mut out = Vec::new();
    for _ in 0..count {
        let blob = Vec::<u8>::decode(&mut reader).map_err(|e| bad(&e))?;
        let comment = String::decode(&mut reader).map_err(|e| bad(&e))?;
        out.push((blob, comment));
    }
    Ok(out)
}

/// The body of SSH_AGENT_SIGN_RESPONSE around an encoded SSH signature.
pub fn encode_sign_response(signature: &[u8]) -> Option<Vec<u8>> {
    let mut body = vec![SSH_AGENT_SIGN_RESPONSE];
    signature.encode(&mut body).ok()?;
    Some(body)
}

/// An SSH signature blob: algorithm name and signature bytes.
pub fn signature_blob(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    algorithm.encode(&mut out).ok()?;
    data.encode(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn p256_key(seed: u8) -> KeyData {
        let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
        let verifying = p256::ecdsa::VerifyingKey::from(secret.public_key());
        KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::from(&verifying))
    }

    #[test]
    fn identities_round_trip() {
        let key = KeyBlob::from_key(&p256_key(3)).unwrap();
        let body = encode_identities(&[(key.blob.clone(), "c".into())]).unwrap();
        assert_eq!(
            decode_identities(&body).unwrap(),
            vec![(key.blob, "c".into())]
        );
    }

    #[test]
    fn a_plain_key_blob_parses_and_trailing_bytes_do_not() {
        let key = KeyBlob::from_key(&p256_key(4)).unwrap();
        assert_eq!(KeyBlob::parse(key.blob.clone()).unwrap(), key);
        let mut longer = key.blob.clone();
        longer.push(0);
        assert!(KeyBlob::parse(longer).is_err());
    }

    #[test]
    fn sign_request_parses_flags() {
        let key = KeyBlob::from_key(&p256_key(5)).unwrap();
        let mut frame = vec![SSH_AGENTC_SIGN_REQUEST];
        key.blob.as_slice().encode(&mut frame).unwrap();
        b"data".as_slice().encode(&mut frame).unwrap();
        4u32.encode(&mut frame).unwrap();
        let request = parse_sign(&frame).unwrap();
        assert_eq!(
            (request.key, request.data, request.flags),
            (key, b"data".to_vec(), 4)
        );
    }
}
