//! swtpm on loopback TCP: data port P, control port P+1. Any local user can connect
//! there, which is fine for tests and for tss-esapi, whose swtpm TCTI knows nothing
//! else; `tpmd --simulator` uses a private simulator instead ([`crate::private`]).

use std::ffi::{OsStr, OsString};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{log_command, log_tail};
use crate::{ports, Family, SimulatorError, START_TIMEOUT};

/// A started swtpm on TCP.
pub(crate) enum Launched {
    /// Our swtpm listens on both ports.
    Ready(Child),
    /// swtpm exited before listening: with auto-selected ports, most likely because
    /// another process took a port between selection and bind.
    Exited(SimulatorError),
}

/// Starts swtpm on ports `port` and `port + 1` and waits until it listens there.
pub(crate) fn launch(
    swtpm: &Path,
    family: Family,
    state_dir: &Path,
    port: u16,
    log: &Path,
) -> Result<Launched, SimulatorError> {
    let ctrl_port = port.checked_add(1).ok_or(SimulatorError::NoFreePorts)?;
    let server = format!("type=tcp,port={port}");
    let ctrl = format!("type=tcp,port={ctrl_port}");
    let mut state = OsString::from("dir=");
    state.push(state_dir);
    let mut args: Vec<&OsStr> = vec![OsStr::new("socket")];
    if family == Family::Tpm2 {
        args.push(OsStr::new("--tpm2"));
    }
    args.extend([
        OsStr::new("--server"),
        OsStr::new(&server),
        OsStr::new("--ctrl"),
        OsStr::new(&ctrl),
        OsStr::new("--tpmstate"),
        &state,
        OsStr::new("--flags"),
        OsStr::new("not-need-init,startup-clear"),
    ]);
    let (stdout, stderr) = log_command(log, swtpm, &args)?;
    let mut child = Command::new(swtpm)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|source| SimulatorError::Spawn {
            program: "swtpm",
            source,
        })?;
    let pid = child.id();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let exited = child
            .try_wait()
            .map_err(|source| SimulatorError::Stop { pid, source })?;
        if let Some(status) = exited {
            return Ok(Launched::Exited(SimulatorError::Exited {
                status,
                log: log.to_path_buf(),
                log_tail: log_tail(log),
            }));
        }
        if listening(pid, port) {
            return Ok(Launched::Ready(child));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SimulatorError::StartTimeout {
                target: format!("127.0.0.1:{port}"),
                log: log.to_path_buf(),
                log_tail: log_tail(log),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether swtpm `pid` (not some other process) listens on both ports and accepts.
fn listening(pid: u32, port: u16) -> bool {
    let ours = [port, port.saturating_add(1)]
        .iter()
        .map(|&p| ports::listened_by(pid, p))
        .all(|owned| owned != Some(false));
    ours && TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(200),
    )
    .is_ok()
}
