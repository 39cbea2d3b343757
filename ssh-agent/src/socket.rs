//! The listening socket: our own (0600 in a 0700 directory) or one handed over by
//! systemd, and the peer check every connection passes first.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};
use tokio::net::{UnixListener, UnixStream};

use crate::error::StartError;

/// A bound listener, and the path to remove on exit if we created it.
pub struct Listener {
    pub listener: UnixListener,
    pub owned_path: Option<PathBuf>,
}

fn socket_error(path: &Path, source: std::io::Error) -> StartError {
    StartError::Socket {
        path: path.to_path_buf(),
        source,
    }
}

/// The socket systemd passed (LISTEN_FDS), if any.
pub fn activated() -> Result<Option<Listener>, StartError> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let std_listener = fds
        .take_unix_listener(0)
        .map_err(|e| StartError::Other(format!("the socket systemd passed is unusable: {e}")))?
        .ok_or_else(|| {
            StartError::Other(
                "systemd passed a socket that is not a Unix stream socket; check ListenStream= in tpmd-ssh-agent.socket".into(),
            )
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| StartError::Other(format!("socket from systemd: {e}")))?;
    let listener = UnixListener::from_std(std_listener)
        .map_err(|e| StartError::Other(format!("socket from systemd: {e}")))?;
    Ok(Some(Listener {
        listener,
        owned_path: None,
    }))
}

/// Binds `path` with mode 0600. The directory is created 0700 if missing; the default
/// directory (ours alone) is also forced to 0700 if it exists.
pub async fn bind(path: &Path, own_directory: bool) -> Result<Listener, StartError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| socket_error(dir, e))?;
        } else if own_directory {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| socket_error(dir, e))?;
        }
    }
    remove_stale(path).await?;
    // The umask makes the socket 0600 from the moment it exists.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(|e| socket_error(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| socket_error(path, e))?;
    Ok(Listener {
        listener,
        owned_path: Some(path.to_path_buf()),
    })
}

/// A new directory, mode 0700, for a socket when there is no XDG_RUNTIME_DIR: as
/// ssh-agent makes `$TMPDIR/ssh-XXXXXXXXXX`, named `tpmd-ssh-XXXXXXXXXX`.
pub fn fresh_directory() -> Result<PathBuf, StartError> {
    use rand::distributions::{Alphanumeric, DistString};
    let base = std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let mut last = None;
    for _ in 0..10 {
        let dir = base.join(format!(
            "{FRESH_PREFIX}{}",
            Alphanumeric.sample_string(&mut rand::thread_rng(), 10)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(socket_error(&dir, e)),
        }
    }
    Err(socket_error(
        &base,
        last.unwrap_or_else(|| std::io::Error::other("no free directory name")),
    ))
}

/// The prefix of directories [`fresh_directory`] makes; the agent removes its own on exit.
pub const FRESH_PREFIX: &str = "tpmd-ssh-";

/// Removes the socket and, if the agent made its directory, the directory with the
/// background log in it, as ssh-agent leaves nothing behind in $TMPDIR.
pub fn remove_socket(path: &Path) {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let ours = dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(FRESH_PREFIX));
        if ours {
            let _ = std::fs::remove_file(dir.join("ssh-agent.log"));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A socket file left by an agent that died is removed; one that answers is not ours
/// to take.
async fn remove_stale(path: &Path) -> Result<(), StartError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(socket_error(
            path,
            std::io::Error::other("exists and is not a socket; remove it or choose another path"),
        ));
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(socket_error(
            path,
            std::io::Error::other("another agent is listening on it; stop it or use -a"),
        ));
    }
    std::fs::remove_file(path).map_err(|e| socket_error(path, e))
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub pid: Option<i32>,
}

impl Peer {
    /// "ssh (pid 1234)" or "unknown process", for the confirm prompt and logs.
    pub fn describe(&self) -> String {
        let Some(pid) = self.pid else {
            return "an unknown process".into();
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|part| !part.is_empty())
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|s| !s.is_empty());
        match cmdline {
            Some(mut cmd) => {
                if cmd.len() > 120 {
                    cmd.truncate(120);
                    cmd.push_str("...");
                }
                format!("{cmd} (pid {pid})")
            }
            None => format!("pid {pid}"),
        }
    }
}

/// Accepts only a peer running as the agent's own user.
pub fn check_peer(stream: &UnixStream) -> Result<Peer, String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    let ours = nix::unistd::getuid().as_raw();
    if cred.uid() != ours {
        return Err(format!(
            "refused a connection from uid {} (pid {}): this agent serves uid {ours} only",
            cred.uid(),
            cred.pid()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into())
        ));
    }
    Ok(Peer { pid: cred.pid() })
}
