//! A TPM on stdin and stdout, for tpm2-tss's `cmd` TCTI: relays each command to the
//! transport named on the command line (`tpmrm:path=...`, `swtpm:path=...`, a device) and
//! writes its response back. One relay keeps one connection, so behind the simulator's
//! kernel resource manager model it is one `/dev/tpmrm0` space, as a TSS client that
//! keeps the device open has.
//!
//! Why not the model's mssim listener: tpm2-tss's mssim TCTI writes a command's framing
//! and its body separately without TCP_NODELAY, so each command waits for the listener's
//! delayed acknowledgement (about 40 ms on Linux). Pipes and unix sockets do not wait.
//!
//!   TPM2_PKCS11_TCTI="cmd:target/release/tpm-stdio tpmrm:path=/tmp/.../tpm.sock"

use std::io::{self, Read, Write};
use std::process::ExitCode;

use tpmd_tpm2::transport::{Connection, Transport};

/// A TPM 2.0 command header: tag (2), size (4), command code (4).
const HEADER: usize = 10;

fn relay(target: &str) -> Result<(), String> {
    let transport: Transport = target
        .parse()
        .map_err(|e| format!("{target}: {e} (expected e.g. tpmrm:path=SOCKET)"))?;
    let mut tpm = Connection::open(&transport, None).map_err(|e| e.to_string())?;
    let (mut input, mut output) = (io::stdin().lock(), io::stdout().lock());
    loop {
        let mut command = vec![0u8; HEADER];
        match input.read_exact(&mut command) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("stdin: {e}")),
        }
        let size = u32::from_be_bytes([command[2], command[3], command[4], command[5]]) as usize;
        if size < HEADER {
            return Err(format!(
                "a command of {size} bytes is shorter than its header"
            ));
        }
        command.resize(size, 0);
        input
            .read_exact(&mut command[HEADER..])
            .map_err(|e| format!("stdin: {e}"))?;
        let response = tpm.transmit(&command).map_err(|e| e.to_string())?;
        output
            .write_all(&response)
            .and_then(|()| output.flush())
            .map_err(|e| format!("stdout: {e}"))?;
    }
}

fn main() -> ExitCode {
    let Some(target) = std::env::args().nth(1) else {
        eprintln!("usage: tpm-stdio TRANSPORT (e.g. tpmrm:path=SOCKET), for the cmd TCTI");
        return ExitCode::from(2);
    };
    match relay(&target) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpm-stdio: {e}");
            ExitCode::FAILURE
        }
    }
}
