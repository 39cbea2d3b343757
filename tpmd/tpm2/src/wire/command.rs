//! A command before it goes on the wire: code, handle area, parameters; the
//! authorization area is added when it is encoded.

use tpmd_api::marshal::{put_tpm2b, put_u16, put_u32};

use super::{TPM_ST_NO_SESSIONS, TPM_ST_SESSIONS};

/// One entry of the authorization area (TPMS_AUTH_COMMAND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCommand {
    pub session: u32,
    pub nonce: Vec<u8>,
    pub attributes: u8,
    pub hmac: Vec<u8>,
}

impl AuthCommand {
    /// The password session (TPM_RS_PW) with `password`.
    pub fn password(password: &[u8]) -> AuthCommand {
        AuthCommand {
            session: super::handle::PASSWORD,
            nonce: Vec::new(),
            attributes: super::session_attr::CONTINUE_SESSION,
            hmac: password.to_vec(),
        }
    }
}

impl Drop for AuthCommand {
    fn drop(&mut self) {
        // A password session carries the auth value itself.
        zeroize::Zeroize::zeroize(&mut self.hmac);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub code: u32,
    pub handles: Vec<u32>,
    /// How many of `handles`, from the first, need an authorization.
    pub auth_handles: usize,
    /// How many handles the response carries before its parameters.
    pub response_handles: usize,
    /// The marshalled parameters. When the first one is a sized buffer, a session may
    /// encrypt its contents in place (TPMA_SESSION.decrypt).
    pub params: Vec<u8>,
}

impl Command {
    pub fn new(code: u32, handles: &[u32], auth_handles: usize, response_handles: usize) -> Self {
        Command {
            code,
            handles: handles.to_vec(),
            auth_handles,
            response_handles,
            params: Vec::new(),
        }
    }

    /// The bytes of the command with this authorization area (none when empty).
    pub fn encode(&self, auths: &[AuthCommand]) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.handles.len() * 4 + self.params.len() + 80);
        put_u16(
            &mut out,
            if auths.is_empty() {
                TPM_ST_NO_SESSIONS
            } else {
                TPM_ST_SESSIONS
            },
        );
        put_u32(&mut out, 0);
        put_u32(&mut out, self.code);
        for handle in &self.handles {
            put_u32(&mut out, *handle);
        }
        if !auths.is_empty() {
            let mut area = Vec::with_capacity(auths.len() * 80);
            for auth in auths {
                put_u32(&mut area, auth.session);
                put_tpm2b(&mut area, &auth.nonce);
                area.push(auth.attributes);
                put_tpm2b(&mut area, &auth.hmac);
            }
            put_u32(&mut out, area.len() as u32);
            out.extend_from_slice(&area);
            zeroize::Zeroize::zeroize(&mut area);
        }
        out.extend_from_slice(&self.params);
        let size = (out.len() as u32).to_be_bytes();
        out[2..6].copy_from_slice(&size);
        out
    }

    /// The contents of the first parameter when it is a sized buffer: what parameter
    /// encryption covers.
    pub fn first_param_mut(&mut self) -> Option<&mut [u8]> {
        let size = u16::from_be_bytes([*self.params.first()?, *self.params.get(1)?]) as usize;
        self.params.get_mut(2..2 + size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_command_without_sessions() {
        let mut cmd = Command::new(0x144, &[], 0, 0);
        cmd.params = vec![0, 0];
        assert_eq!(
            cmd.encode(&[]),
            [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0]
        );
    }

    #[test]
    fn encodes_the_authorization_area_between_handles_and_parameters() {
        let mut cmd = Command::new(0x15D, &[0x8000_0001], 1, 0);
        cmd.params = vec![0, 1, 0xAA];
        let bytes = cmd.encode(&[AuthCommand::password(b"pw")]);
        let want: Vec<u8> = [
            &[0x80, 0x02, 0, 0, 0, 32, 0, 0, 0x01, 0x5D][..],
            &[0x80, 0, 0, 1],
            &[0, 0, 0, 11],
            &[0x40, 0, 0, 9, 0, 0, 1, 0, 2, b'p', b'w'],
            &[0, 1, 0xAA],
        ]
        .concat();
        assert_eq!(bytes, want);
    }

    #[test]
    fn the_first_parameter_is_found_only_when_sized() {
        let mut cmd = Command::new(0x153, &[1], 1, 0);
        cmd.params = vec![0, 2, 7, 8, 9];
        assert_eq!(cmd.first_param_mut().map(|p| p.to_vec()), Some(vec![7, 8]));
        cmd.params = vec![0, 9, 1];
        assert!(cmd.first_param_mut().is_none());
    }
}
