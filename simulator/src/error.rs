//! What can go wrong starting, resetting or stopping a simulator: one line each, naming
//! the fix.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use tpmd_tpm2::srk::SrkError;

use crate::proxy::ProxyError;
use crate::START_TIMEOUT;

/// Why a simulator could not be started, reset or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("`{0}` is not on PATH; install it with `apt-get install swtpm swtpm-tools`")]
    MissingProgram(&'static str),
    #[error("the parent directory of the state directory {0} does not exist; create it first or choose another state directory")]
    StateDirParentMissing(PathBuf),
    #[error("{0} exists but is not a directory; choose another state directory")]
    StateDirNotDirectory(PathBuf),
    #[error(
        "cannot create the state directory {path}: {source}; check the permissions of its parent"
    )]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create a temporary state directory: {0}; check that TMPDIR is writable")]
    TempDir(#[source] io::Error),
    #[error(
        "cannot open the swtpm log {path}: {source}; check that the state directory is writable"
    )]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no free pair of loopback ports found; free some ports or pass an explicit port")]
    NoFreePorts,
    #[error("cannot run {program}: {source}; check that swtpm is installed correctly")]
    Spawn {
        program: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("swtpm_setup could not prepare TPM 1.2 state in {dir} ({status}): {log_tail}; delete the directory and try again")]
    Setup {
        dir: PathBuf,
        status: ExitStatus,
        log_tail: String,
    },
    #[error("swtpm exited during startup ({status}); see {log}: {log_tail}")]
    Exited {
        status: ExitStatus,
        log: PathBuf,
        log_tail: String,
    },
    #[error("swtpm did not answer on {target} within {} s; see {log}: {log_tail}", START_TIMEOUT.as_secs())]
    StartTimeout {
        target: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("the simulator state in {dir} is in use by {}; stop it or choose another state directory", holder.map_or("another swtpm".to_string(), |pid| format!("process {pid} (another `tpmd --simulator`?)")))]
    StateInUse { dir: PathBuf, holder: Option<u32> },
    #[error("a private simulator listens on no TCP port; leave the port unset")]
    PrivatePort,
    #[error("cannot create the simulator's socket directory in {path}: {source}; check that it is writable")]
    SocketDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to the simulator: {0}")]
    Connect(#[from] tpmd_tpm2::transport::TransportError),
    #[error("cannot provision the simulator's SRK: {0}")]
    Srk(#[from] SrkError),
    #[error("swtpm_ioctl -i on the control channel {target} failed ({status}): {output}; is the simulator still running?")]
    Init {
        target: String,
        status: ExitStatus,
        output: String,
    },
    #[error("cannot send Startup to the simulator on {target}: {source}; swtpm serves one client at a time, so disconnect other clients before reset()")]
    Startup {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("the simulator answered Startup(CLEAR) with response code 0x{0:08x}; delete its state directory if this persists")]
    StartupRc(u32),
    #[error("cannot start the proxy in front of the simulator: {0}")]
    Proxy(#[from] ProxyError),
    #[error("the kernel resource manager model needs a TPM 2.0 simulator; drop the TPM 1.2 option or the kernel resource manager")]
    KernelRmNeedsTpm2,
    #[error("cannot stop swtpm (pid {pid}): {source}; kill it by hand")]
    Stop {
        pid: u32,
        #[source]
        source: io::Error,
    },
}
