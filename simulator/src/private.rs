//! A private simulator: reachable only by its user, and unable to outlive the process
//! that started it.
//!
//! - swtpm listens for data nowhere. Its data channel is one end of a socket pair; the
//!   other end stays in this process, with the proxy, whose unix socket is how clients
//!   reach the TPM. swtpm runs with `--terminate`, so it exits as soon as our end closes:
//!   when the [`crate::Simulator`] is dropped, and also when this process dies in any
//!   way, `kill -9` included, since the kernel closes a dead process's files. No thread
//!   has to outlive anything and no signal has to be delivered (PR_SET_PDEATHSIG
//!   would fire when the *thread* that forked exits, not the process).
//! - Its control channel and the proxy's socket are unix sockets of mode 0600 in a
//!   fresh directory of mode 0700 inside the state directory (itself 0700). Only the
//!   user who started it (and root) can connect; nothing listens on TCP.
//! - swtpm refuses a descriptor below 3 for `--fd`, and std passes a child only stdin,
//!   stdout and stderr (more would need `pre_exec`, i.e. unsafe code): swtpm's end goes
//!   in as stdin, and `sh` moves it to descriptor 3 and becomes swtpm (`exec`).

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::control::probe_command;
use crate::process::{find_program, log_command, log_tail};
use crate::{Family, SimulatorError, START_TIMEOUT, STOP_TIMEOUT};

/// Socket directories in the state directory are named `sockets-XXXXXX`.
const SOCKET_DIR_PREFIX: &str = "sockets-";
pub(crate) const CTRL_SOCKET: &str = "ctrl.sock";
pub(crate) const TPM_SOCKET: &str = "tpm.sock";
/// A unix socket path holds at most 107 bytes; leave room for the longer name.
const MAX_DIR_LEN: usize = 107 - 1 - CTRL_SOCKET.len();
/// Larger than any TPM 2.0 or 1.2 response.
const MAX_RESPONSE: usize = 64 * 1024;

/// A fresh 0700 directory for the sockets: in the state directory, unless its path is
/// too long for a unix socket or holds a comma (swtpm's option separator); then in
/// $XDG_RUNTIME_DIR or the temporary directory.
pub(crate) fn socket_dir(state_dir: &Path) -> Result<tempfile::TempDir, SimulatorError> {
    let fits = |dir: &Path| {
        let text = dir.as_os_str().as_encoded_bytes();
        // The random suffix adds 7 bytes to the prefix.
        text.len() + 1 + SOCKET_DIR_PREFIX.len() + 7 <= MAX_DIR_LEN && !text.contains(&b',')
    };
    let parent = if fits(state_dir) {
        state_dir.to_path_buf()
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir() && fits(dir))
            .unwrap_or_else(std::env::temp_dir)
    };
    let dir_err = |source| SimulatorError::SocketDir {
        path: parent.clone(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix(SOCKET_DIR_PREFIX)
        .tempdir_in(&parent)
        .map_err(dir_err)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(dir_err)?;
    Ok(dir)
}

/// Removes socket directories that swtpms killed along with their owner left in the
/// state directory. Only call this while holding the state's lock: then no other
/// simulator is using any of them.
pub(crate) fn remove_stale_socket_dirs(state_dir: &Path, ours: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = entry
            .file_name()
            .to_string_lossy()
            .starts_with(SOCKET_DIR_PREFIX)
            && path != ours
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if stale {
            // Best effort: a leftover directory costs nothing but a directory entry.
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A started private swtpm.
pub(crate) enum Launched {
    /// It answered a command on `channel`, our end of its data channel.
    Ready { child: Child, channel: UnixStream },
    /// It exited before answering.
    Exited(ExitStatus),
}

/// Starts swtpm with its data channel on a socket pair and its control channel on
/// `ctrl`, and waits until it answers a command.
pub(crate) fn launch(
    swtpm: &Path,
    family: Family,
    state_dir: &Path,
    ctrl: &Path,
    log: &Path,
) -> Result<Launched, SimulatorError> {
    let spawn_err = |source| SimulatorError::Spawn {
        program: "swtpm",
        source,
    };
    let sh = find_program("sh")?;
    let (channel, theirs) = UnixStream::pair().map_err(spawn_err)?;
    let mut ctrl_arg = OsString::from("type=unixio,mode=0600,path=");
    ctrl_arg.push(ctrl);
    let mut state = OsString::from("dir=");
    state.push(state_dir);
    let mut args: Vec<&OsStr> = vec![OsStr::new("socket")];
    if family == Family::Tpm2 {
        args.push(OsStr::new("--tpm2"));
    }
    args.extend([
        OsStr::new("--fd"),
        OsStr::new("3"),
        OsStr::new("--terminate"),
        OsStr::new("--ctrl"),
        &ctrl_arg,
        OsStr::new("--tpmstate"),
        &state,
        OsStr::new("--flags"),
        OsStr::new("not-need-init,startup-clear"),
    ]);
    let (stdout, stderr) = log_command(log, swtpm, &args)?;
    let mut command = Command::new(sh);
    command
        .arg("-c")
        .arg(r#"exec "$0" "$@" 3<&0 </dev/null"#)
        .arg(swtpm)
        .args(&args)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(stdout)
        .stderr(stderr);
    let mut child = command.spawn().map_err(spawn_err)?;
    // The command holds swtpm's end until dropped; only swtpm may keep it.
    drop(command);
    match probe(&channel, family) {
        Ok(()) => Ok(Launched::Ready { child, channel }),
        Err(err) => {
            let pid = child.id();
            let stop_err = |source| SimulatorError::Stop { pid, source };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().map_err(stop_err)? {
                    return Ok(Launched::Exited(status));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Alive but silent: give up on it.
            let _ = child.kill();
            let _ = child.wait();
            Err(SimulatorError::StartTimeout {
                target: format!("its socket pair ({err})"),
                log: log.to_path_buf(),
                log_tail: log_tail(log),
            })
        }
    }
}

/// One command and its response on the new channel.
fn probe(mut channel: &UnixStream, family: Family) -> io::Result<()> {
    channel.set_read_timeout(Some(START_TIMEOUT))?;
    channel.set_write_timeout(Some(START_TIMEOUT))?;
    channel.write_all(probe_command(family))?;
    let mut header = [0u8; 10];
    channel.read_exact(&mut header)?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if !(header.len()..=MAX_RESPONSE).contains(&size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a response of {size} bytes"),
        ));
    }
    let mut rest = vec![0u8; size - header.len()];
    channel.read_exact(&mut rest)?;
    channel.set_write_timeout(None)
}
