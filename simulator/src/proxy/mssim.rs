//! The Microsoft simulator's TCP protocol (the `mssim` TCTI of tpm2-tss), for TSS
//! clients that must keep one connection for their whole life. The swtpm TCTI opens a
//! new connection for every command, so through the kernel model each of its commands
//! would be a fresh `/dev/tpmrm0` space; the mssim TCTI keeps one connection, which is
//! what an ESYS context on the real device does.
//!
//! Data port: `TPM_SEND_COMMAND` (locality, size, command) is answered with size,
//! response and a zero acknowledgement; `TPM_SESSION_END` closes. Platform port: every
//! signal is acknowledged and otherwise ignored: power and NV signals do not reach
//! swtpm (reset it with `Simulator::reset`).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use nix::errno::Errno;

use super::Incoming;
use crate::kernel_rm::wire;

const SEND_COMMAND: u32 = 8;
const SESSION_END: u32 = 20;
/// The one platform signal with a parameter and a value to return.
const ACT_GET_SIGNALED: u32 = 26;

/// A client connection that acknowledges what it reads at once. The mssim TCTI writes a
/// command in two pieces (header, then body) with Nagle's algorithm on, so its body waits
/// for the header's ACK; a delayed ACK made that 40 ms per command.
pub(super) struct QuickAck(pub TcpStream);

impl Read for QuickAck {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Quick-ACK mode is not sticky: the kernel may leave it, so ask before each read.
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        self.0.read(buf)
    }
}

impl Write for QuickAck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn read_u32(stream: &mut impl Read) -> io::Result<u32> {
    let mut word = [0u8; 4];
    stream.read_exact(&mut word)?;
    Ok(u32::from_be_bytes(word))
}

/// One TPM command from an mssim client.
pub(super) fn read_command(stream: &mut impl Read) -> Incoming {
    let Ok(SEND_COMMAND) = read_u32(stream) else {
        // TPM_SESSION_END, end of stream, or a request this proxy does not serve.
        return Incoming::Closed;
    };
    let mut locality = [0u8; 1];
    if stream.read_exact(&mut locality).is_err() {
        return Incoming::Closed;
    }
    let Ok(size) = read_u32(stream) else {
        return Incoming::Closed;
    };
    let size = size as usize;
    if size < wire::HEADER_SIZE {
        return Incoming::Refused(Errno::EINVAL);
    }
    if size > wire::MAX_COMMAND_SIZE {
        return Incoming::Refused(Errno::E2BIG);
    }
    let mut command = vec![0u8; size];
    match stream.read_exact(&mut command) {
        Ok(()) => Incoming::Command(command),
        Err(_) => Incoming::Closed,
    }
}

pub(super) fn write_response(stream: &mut impl Write, response: &[u8]) -> io::Result<()> {
    let mut framed = Vec::with_capacity(response.len() + 8);
    framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
    framed.extend_from_slice(response);
    framed.extend_from_slice(&0u32.to_be_bytes());
    stream.write_all(&framed)
}

/// Acknowledges platform signals until the client ends the session.
pub(super) fn serve_platform(mut stream: TcpStream) {
    while let Ok(signal) = read_u32(&mut stream) {
        if signal == SESSION_END {
            break;
        }
        let reply: &[u8] = if signal == ACT_GET_SIGNALED {
            if read_u32(&mut stream).is_err() {
                break;
            }
            &[0, 0, 0, 0, 0, 0, 0, 0]
        } else {
            &[0, 0, 0, 0]
        };
        if stream.write_all(reply).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_framed_with_locality_and_size() {
        let command = wire::get_capability(1, 2, 3);
        let mut framed = SEND_COMMAND.to_be_bytes().to_vec();
        framed.push(0);
        framed.extend_from_slice(&(command.len() as u32).to_be_bytes());
        framed.extend_from_slice(&command);
        framed.extend_from_slice(&SESSION_END.to_be_bytes());
        let mut input = framed.as_slice();
        assert!(matches!(read_command(&mut input), Incoming::Command(c) if c == command));
        assert!(matches!(read_command(&mut input), Incoming::Closed));

        let mut huge = SEND_COMMAND.to_be_bytes().to_vec();
        huge.push(0);
        huge.extend_from_slice(&5000u32.to_be_bytes());
        assert!(matches!(
            read_command(&mut huge.as_slice()),
            Incoming::Refused(Errno::E2BIG)
        ));

        let mut out = Vec::new();
        assert!(write_response(&mut out, &[1, 2, 3]).is_ok());
        assert_eq!(out, vec![0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0]);
    }
}
