//! A response split into its areas. Parsing never panics and never trusts a size field:
//! responses come from a device or a socket that may be anything.

use tpmd_api::marshal::{MarshalError, Reader};

use super::{Command, TPM_ST_NO_SESSIONS, TPM_ST_SESSIONS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed TPM response: {0}")]
    Malformed(#[from] MarshalError),
    #[error("malformed TPM response: tag {0:#06x} is not a TPM 2.0 response tag")]
    Tag(u16),
    #[error("malformed TPM response: it says it is {said} bytes but {got} arrived")]
    Size { said: usize, got: usize },
    #[error("malformed TPM response: {0}")]
    Layout(&'static str),
}

/// One entry of the response's authorization area (TPMS_AUTH_RESPONSE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResponse {
    pub nonce: Vec<u8>,
    pub attributes: u8,
    pub hmac: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The command this answers.
    pub code: u32,
    /// TPM_RC_SUCCESS (0) or the failure; a failure carries nothing else.
    pub rc: u32,
    pub handles: Vec<u32>,
    pub params: Vec<u8>,
    pub auths: Vec<AuthResponse>,
}

impl Response {
    /// Splits the response to `command`.
    pub fn decode(command: &Command, bytes: &[u8]) -> Result<Response, WireError> {
        let mut r = Reader::new(bytes);
        let tag = r.read_u16("tag")?;
        let size = r.read_u32("responseSize")? as usize;
        if size != bytes.len() {
            return Err(WireError::Size {
                said: size,
                got: bytes.len(),
            });
        }
        let rc = r.read_u32("responseCode")?;
        let mut response = Response {
            code: command.code,
            rc,
            handles: Vec::new(),
            params: Vec::new(),
            auths: Vec::new(),
        };
        if rc != 0 {
            // A TPM 1.2-style tag (0x00C4) also lands here: its code says enough.
            return Ok(response);
        }
        if tag != TPM_ST_SESSIONS && tag != TPM_ST_NO_SESSIONS {
            return Err(WireError::Tag(tag));
        }
        for _ in 0..command.response_handles {
            response.handles.push(r.read_u32("handle")?);
        }
        if tag == TPM_ST_NO_SESSIONS {
            response.params = r.read_bytes(r.remaining(), "parameters")?.to_vec();
            return Ok(response);
        }
        let param_size = r.read_u32("parameterSize")? as usize;
        response.params = r.read_bytes(param_size, "parameters")?.to_vec();
        while !r.is_empty() {
            response.auths.push(AuthResponse {
                nonce: r.read_tpm2b("nonceTPM")?.to_vec(),
                attributes: r.read_u8("sessionAttributes")?,
                hmac: r.read_tpm2b("hmac")?.to_vec(),
            });
        }
        Ok(response)
    }

    /// A reader over the parameters.
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(&self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> Command {
        Command::new(0x157, &[0x8100_0001], 1, 1)
    }

    #[test]
    fn splits_handles_parameters_and_sessions() {
        let bytes: Vec<u8> = [
            &[0x80, 0x02, 0, 0, 0, 31, 0, 0, 0, 0][..],
            &[0x80, 0xFF, 0xFF, 0xFF],
            &[0, 0, 0, 4, 0, 2, 0xAB, 0xCD],
            &[0, 2, 1, 2, 0x01, 0, 2, 3, 4],
        ]
        .concat();
        let r = Response::decode(&load(), &bytes).unwrap();
        assert_eq!(r.handles, vec![0x80FF_FFFF]);
        assert_eq!(r.params, vec![0, 2, 0xAB, 0xCD]);
        assert_eq!(
            r.auths,
            vec![AuthResponse {
                nonce: vec![1, 2],
                attributes: 1,
                hmac: vec![3, 4]
            }]
        );
    }

    #[test]
    fn a_failure_is_only_a_header() {
        let r = Response::decode(&load(), &[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x02]).unwrap();
        assert_eq!(r.rc, 0x902);
        assert!(r.params.is_empty());
    }

    #[test]
    fn lies_about_sizes_are_errors_not_panics() {
        assert!(Response::decode(&load(), &[0x80, 0x01, 0, 0, 0, 11, 0, 0, 0, 0]).is_err());
        assert!(Response::decode(&load(), &[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]).is_err());
        let bad_param_size = [
            &[0x80, 0x02, 0, 0, 0, 20, 0, 0, 0, 0][..],
            &[0x80, 0, 0, 1],
            &[0xFF, 0xFF, 0, 0, 0, 0],
        ]
        .concat();
        assert!(Response::decode(&load(), &bad_param_size).is_err());
        for n in 0..12 {
            let _ = Response::decode(&load(), &vec![0x80; n]);
        }
    }
}
