//! Command and response framing: header, handles, parameters and auth blocks, and the
//! parameter digests the authorization HMACs cover.

use super::auth::{auth_hmac, hmac_eq, sha1_parts, AuthSecret, Nonce};
use super::consts::tag;
use super::rc::TpmRc;
use super::wire::{CodecError, Reader, Writer};

/// Largest response we accept; TPM 1.2 buffers are at most a few KiB.
pub const MAX_RESPONSE: usize = 8192;
const HEADER: usize = 10;
const RESPONSE_AUTH: usize = 20 + 1 + 20;

/// A command before framing. Handles are not covered by the HMAC; parameters are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub ordinal: u32,
    pub handles: Vec<u32>,
    pub params: Vec<u8>,
    /// How many handles lead the response parameters (not covered by the response HMAC).
    pub response_handles: usize,
}

/// One authorization block of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAuth {
    pub handle: u32,
    pub nonce_odd: Nonce,
    pub continue_session: bool,
    pub hmac: [u8; 20],
}

impl Command {
    pub fn new(ordinal: u32) -> Command {
        Command {
            ordinal,
            handles: Vec::new(),
            params: Vec::new(),
            response_handles: 0,
        }
    }

    /// inParamDigest: SHA-1(ordinal || parameters).
    pub fn param_digest(&self) -> [u8; 20] {
        sha1_parts(&[&self.ordinal.to_be_bytes(), &self.params])
    }

    /// The command HMAC for one session.
    pub fn authorize(
        &self,
        secret: &AuthSecret,
        handle: u32,
        nonce_even: &Nonce,
        nonce_odd: Nonce,
        continue_session: bool,
    ) -> CommandAuth {
        CommandAuth {
            handle,
            nonce_odd,
            continue_session,
            hmac: auth_hmac(
                secret,
                &self.param_digest(),
                nonce_even,
                &nonce_odd,
                continue_session,
            ),
        }
    }

    /// The bytes to send. The tag follows from the number of auth blocks (0, 1 or 2).
    pub fn encode(&self, auths: &[CommandAuth]) -> Vec<u8> {
        let tag = match auths.len() {
            0 => tag::RQU_COMMAND,
            1 => tag::RQU_AUTH1_COMMAND,
            _ => tag::RQU_AUTH2_COMMAND,
        };
        let size = HEADER + 4 * self.handles.len() + self.params.len() + 45 * auths.len();
        let mut w = Writer::new();
        w.u16(tag)
            .u32(u32::try_from(size).unwrap_or(u32::MAX))
            .u32(self.ordinal);
        for h in &self.handles {
            w.u32(*h);
        }
        w.bytes(&self.params);
        for a in auths.iter().take(2) {
            w.u32(a.handle)
                .bytes(&a.nonce_odd)
                .bool(a.continue_session)
                .bytes(&a.hmac);
        }
        w.into_vec()
    }
}

/// One authorization block of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseAuth {
    pub nonce_even: Nonce,
    pub continue_session: bool,
    pub hmac: [u8; 20],
}

/// A parsed response of a successful command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub ordinal: u32,
    /// Handles and parameters, without the auth blocks.
    pub body: Vec<u8>,
    pub response_handles: usize,
    pub auths: Vec<ResponseAuth>,
}

/// Why a response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error(transparent)]
    Tpm(#[from] TpmRc),
    #[error("malformed TPM 1.2 response: {0}")]
    Codec(#[from] CodecError),
    #[error("the TPM response HMAC does not verify (wrong nonce, tampered response, or a wrong auth value); the response was discarded")]
    BadResponseHmac,
}

/// Splits raw response bytes into the response code, body and `auths` auth blocks.
/// A non-zero return code becomes [`ResponseError::Tpm`].
pub fn parse_response(
    bytes: &[u8],
    command: &Command,
    auths: usize,
) -> Result<Response, ResponseError> {
    let mut r = Reader::new(bytes);
    let tag = r.u16("response tag")?;
    let size = r.u32("response size")? as usize;
    let rc = r.u32("response code")?;
    if size != bytes.len() {
        return Err(CodecError::Invalid {
            what: "response header",
            reason: "the size field does not match the bytes received",
        }
        .into());
    }
    if rc != 0 {
        return Err(TpmRc(rc).into());
    }
    let expected_tag = match auths {
        0 => tag::RSP_COMMAND,
        1 => tag::RSP_AUTH1_COMMAND,
        _ => tag::RSP_AUTH2_COMMAND,
    };
    if tag != expected_tag {
        return Err(CodecError::Invalid {
            what: "response tag",
            reason: "the tag does not match the number of auth sessions sent",
        }
        .into());
    }
    let auth_len = RESPONSE_AUTH * auths;
    let rest = r.rest();
    if rest.len() < auth_len + 4 * command.response_handles {
        return Err(CodecError::Truncated {
            what: "response auth blocks",
            needed: auth_len + 4 * command.response_handles,
            left: rest.len(),
        }
        .into());
    }
    let (body, auth_bytes) = rest.split_at(rest.len() - auth_len);
    let mut ar = Reader::new(auth_bytes);
    let mut parsed = Vec::with_capacity(auths);
    for _ in 0..auths {
        parsed.push(ResponseAuth {
            nonce_even: ar.array("response nonceEven")?,
            continue_session: ar.bool("response continueAuthSession")?,
            hmac: ar.array("response resAuth")?,
        });
    }
    Ok(Response {
        ordinal: command.ordinal,
        body: body.to_vec(),
        response_handles: command.response_handles,
        auths: parsed,
    })
}

impl Response {
    /// outParamDigest: SHA-1(returnCode(0) || ordinal || parameters after the handles).
    pub fn param_digest(&self) -> [u8; 20] {
        let params = &self.body[4 * self.response_handles..];
        sha1_parts(&[&0u32.to_be_bytes(), &self.ordinal.to_be_bytes(), params])
    }

    /// Checks auth block `index` against the secret and the nonceOdd we sent.
    pub fn verify(
        &self,
        index: usize,
        secret: &AuthSecret,
        nonce_odd: &Nonce,
    ) -> Result<(), ResponseError> {
        let auth = self.auths.get(index).ok_or(CodecError::Invalid {
            what: "response",
            reason: "missing auth block",
        })?;
        let expected = auth_hmac(
            secret,
            &self.param_digest(),
            &auth.nonce_even,
            nonce_odd,
            auth.continue_session,
        );
        if hmac_eq(&expected, &auth.hmac) {
            Ok(())
        } else {
            Err(ResponseError::BadResponseHmac)
        }
    }

    /// The response parameters (after the handles).
    pub fn params(&self) -> &[u8] {
        &self.body[4 * self.response_handles..]
    }

    /// The response handles.
    pub fn handles(&self) -> Vec<u32> {
        self.body[..4 * self.response_handles]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_encodes_like_the_spec() {
        // TPM_Startup(TPM_ST_CLEAR): 00 C1 | 00 00 00 0C | 00 00 00 99 | 00 01
        let mut c = Command::new(0x99);
        c.params = vec![0, 1];
        assert_eq!(
            c.encode(&[]),
            [0x00, 0xC1, 0, 0, 0, 12, 0, 0, 0, 0x99, 0, 1]
        );
    }

    #[test]
    fn auth1_command_layout() {
        let mut c = Command::new(0x3C);
        c.handles = vec![0x0100_0000];
        c.params = vec![0, 0, 0, 1, 0xAA];
        let auth = c.authorize(
            &AuthSecret::from_raw([0; 20]),
            0x0200_0000,
            &[1; 20],
            [2; 20],
            true,
        );
        let bytes = c.encode(std::slice::from_ref(&auth));
        assert_eq!(&bytes[..2], &[0x00, 0xC2]);
        assert_eq!(bytes.len(), 10 + 4 + 5 + 45);
        assert_eq!(&bytes[2..6], &(bytes.len() as u32).to_be_bytes());
        assert_eq!(&bytes[19..23], &[2, 0, 0, 0]);
        assert_eq!(&bytes[23..43], &[2; 20]);
        assert_eq!(bytes[43], 1);
        assert_eq!(&bytes[44..], &auth.hmac);
    }

    fn response(rc: u32, tag: u16, body: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(tag).u32((10 + body.len()) as u32).u32(rc).bytes(body);
        w.into_vec()
    }

    #[test]
    fn response_hmac_round_trip_and_tamper() {
        let secret = AuthSecret::from_raw([4; 20]);
        let mut cmd = Command::new(0x41);
        cmd.response_handles = 1;
        let nonce_odd = [8; 20];
        let nonce_even = [9; 20];
        let handle = [0x01, 0x00, 0x00, 0x05];
        let digest = sha1_parts(&[&0u32.to_be_bytes(), &0x41u32.to_be_bytes()]);
        let mac = auth_hmac(&secret, &digest, &nonce_even, &nonce_odd, true);
        let mut body = handle.to_vec();
        body.extend(nonce_even);
        body.push(1);
        body.extend(mac);
        let bytes = response(0, 0xC5, &body);
        let resp = parse_response(&bytes, &cmd, 1).unwrap();
        assert_eq!(resp.handles(), vec![0x0100_0005]);
        resp.verify(0, &secret, &nonce_odd).unwrap();
        assert_eq!(
            resp.verify(0, &secret, &[7; 20]),
            Err(ResponseError::BadResponseHmac)
        );
        // Byte 15 is in nonceEven (the handle before it is outside the HMAC).
        let mut tampered = bytes.clone();
        tampered[15] ^= 1;
        let resp = parse_response(&tampered, &cmd, 1).unwrap();
        assert_eq!(
            resp.verify(0, &secret, &nonce_odd),
            Err(ResponseError::BadResponseHmac)
        );
        for cut in 0..bytes.len() {
            assert!(parse_response(&bytes[..cut], &cmd, 1).is_err());
        }
    }

    #[test]
    fn error_codes_become_typed_errors() {
        let bytes = response(1, 0xC4, &[]);
        let err = parse_response(&bytes, &Command::new(0x3C), 1).unwrap_err();
        assert_eq!(err, ResponseError::Tpm(TpmRc(1)));
        assert!(err.to_string().contains("TPM_AUTHFAIL"));
    }
}
