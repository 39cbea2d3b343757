//! Powering the simulated TPM: TPM_Init on swtpm's control channel, and the few raw
//! commands the harness itself sends on the data channel.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::find_program;
use crate::{Family, SimulatorError};

/// How long a TPM command sent by the harness may take (Startup after a reset).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Where swtpm's control channel listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ControlChannel {
    /// Loopback TCP.
    Tcp(u16),
    /// A unix socket (a private simulator's, in its 0700 socket directory).
    Unix(PathBuf),
}

impl std::fmt::Display for ControlChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlChannel::Tcp(port) => write!(f, "127.0.0.1:{port}"),
            ControlChannel::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

impl ControlChannel {
    /// `swtpm_ioctl -i`: TPM_Init. The TPM then refuses every command with
    /// TPM_RC_INITIALIZE until it gets Startup.
    pub(crate) fn init(&self) -> Result<(), SimulatorError> {
        let program = find_program("swtpm_ioctl")?;
        let mut command = Command::new(program);
        match self {
            ControlChannel::Tcp(port) => command.args(["--tcp", &format!("127.0.0.1:{port}")]),
            ControlChannel::Unix(path) => command.arg("--unix").arg(path),
        };
        let output = command
            .arg("-i")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| SimulatorError::Spawn {
                program: "swtpm_ioctl",
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        Err(SimulatorError::Init {
            target: self.to_string(),
            status: output.status,
            output: text.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

/// Startup(CLEAR) for the family.
pub(crate) fn startup_command(family: Family) -> &'static [u8] {
    match family {
        // TPM2_Startup(TPM_SU_CLEAR): TPM_ST_NO_SESSIONS, size 12, TPM_CC_Startup.
        Family::Tpm2 => &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0],
        // TPM_Startup(TPM_ST_CLEAR): TPM_TAG_RQU_COMMAND, size 12, TPM_ORD_Startup.
        Family::Tpm12 => &[0x00, 0xc1, 0, 0, 0, 12, 0, 0, 0, 0x99, 0, 1],
    }
}

/// A command any TPM of the family answers, to learn that swtpm is serving.
pub(crate) fn probe_command(family: Family) -> &'static [u8] {
    match family {
        // TPM2_GetRandom(8): TPM_ST_NO_SESSIONS, size 12, TPM_CC_GetRandom.
        Family::Tpm2 => &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8],
        // TPM_GetRandom(8): TPM_TAG_RQU_COMMAND, size 14, TPM_ORD_GetRandom.
        Family::Tpm12 => &[0x00, 0xc1, 0, 0, 0, 14, 0, 0, 0, 0x46, 0, 0, 0, 8],
    }
}

/// The response code of a response.
pub(crate) fn response_code(response: &[u8]) -> io::Result<u32> {
    match response.get(6..10) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a response shorter than its header",
        )),
    }
}

/// Sends a command to the TPM on the TCP data port and returns the response code.
pub(crate) fn raw_command(port: u16, command: &[u8]) -> io::Result<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT)?;
    stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    stream.write_all(command)?;
    // Header: tag (2), size (4), response code (4).
    let mut header = [0u8; 10];
    stream.read_exact(&mut header)?;
    response_code(&header)
}
