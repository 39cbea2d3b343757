//! A TPM 2.0 on one connection: commands from [`crate::wire`] out, checked responses
//! back. Every command tpmd sends goes through [`Tpm::execute`], so this is where they
//! are counted.

use tpmd_transport::{CommandCounter, Connection, Transport, TransportError};

use crate::wire::{cc, AuthCommand, Command, Response, ResponseCode, WireError};

#[derive(Debug, thiserror::Error)]
pub enum TpmCallError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error("TPM2_{} failed with {rc}", cc::static_name(*command))]
    Tpm { command: u32, rc: ResponseCode },
}

impl TpmCallError {
    /// The TPM's response code, when the TPM answered with one.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            TpmCallError::Tpm { rc, .. } => Some(*rc),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Tpm {
    conn: Connection,
}

impl Tpm {
    /// Connects to the TPM at `transport`, counting commands in `counter`.
    pub fn open(
        transport: &Transport,
        counter: Option<CommandCounter>,
    ) -> Result<Tpm, TransportError> {
        Ok(Tpm {
            conn: Connection::open(transport, counter)?,
        })
    }

    /// Sends `command` with `auths` and returns the response if the TPM succeeded.
    pub fn execute(
        &mut self,
        command: &Command,
        auths: &[AuthCommand],
    ) -> Result<Response, TpmCallError> {
        let bytes = self.conn.transmit(&command.encode(auths))?;
        let response = Response::decode(command, &bytes)?;
        if response.rc != 0 {
            return Err(TpmCallError::Tpm {
                command: command.code,
                rc: ResponseCode(response.rc),
            });
        }
        Ok(response)
    }

    pub fn target(&self) -> &str {
        self.conn.target()
    }

    /// Keeps a swtpm connection open between commands (see
    /// [`Connection::hold_between_commands`]); [`release`](Self::release) it when idle.
    pub fn hold_between_commands(self) -> Tpm {
        Tpm {
            conn: self.conn.hold_between_commands(),
        }
    }

    /// Lets other programs reach a swtpm this connection holds.
    pub fn release(&mut self) {
        self.conn.release();
    }
}
