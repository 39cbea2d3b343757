//! tpmd's own unix socket: the `org.tpmd.Daemon1` object served peer to peer, without
//! a bus daemon in between. Same object, same checks; the caller's uid comes from the
//! kernel (SO_PEERCRED) instead of the bus.
//!
//! Each connection is its own tokio task and holds nothing the others need. What one
//! client can take is bounded: the handshake has a deadline and bounded lines
//! (`handshake`), a message has a size limit (`stream`), and connections are counted
//! per uid and in all (`limits`). A client refused here still reaches tpmd on the bus.
//!
//! A lock file beside the socket (`<socket>.lock`, flock) is held while tpmd serves:
//! whoever holds it owns the socket path, so a socket file left by a killed tpmd is
//! removed at the next start, and one a live tpmd serves is never touched.

mod handshake;
mod limits;
mod stream;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tpmd_api::dbus::OBJECT_PATH;
use tracing::{debug, info, warn};
use zbus::OwnedGuid;

use self::handshake::HANDSHAKE_TIMEOUT;
use self::limits::ConnectionLimits;
use self::stream::{Peer, PeerStream};
use super::Daemon;

/// Who may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Everyone, as on the system bus: every call is checked against the caller's uid.
    Everyone,
    /// tpmd's own user and root, as on a session bus (`tpmd --user`).
    OwnUserAndRoot,
}

impl Admission {
    fn admits(self, uid: u32, own_uid: u32) -> bool {
        match self {
            Admission::Everyone => true,
            Admission::OwnUserAndRoot => uid == own_uid || uid == 0,
        }
    }

    /// The socket file's mode: a `--user` socket is its user's alone.
    fn mode(self) -> u32 {
        match self {
            Admission::Everyone => 0o666,
            Admission::OwnUserAndRoot => 0o600,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SocketOptions {
    pub path: PathBuf,
    pub admission: Admission,
    /// Create the socket's directory with this mode if it is missing (the default
    /// locations); `None`: it must exist (a path given on the command line).
    pub create_dir: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot create the socket directory {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the socket's lock file {path}: {source}")]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another tpmd is serving {path} (it holds {path}.lock); stop it, or give this one another --socket")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket; remove it or choose another --socket")]
    NotASocket { path: PathBuf },
    #[error("cannot remove the stale socket {path}: {source}")]
    Stale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The socket path, owned through its lock file, before tpmd listens on it. Taken early
/// (before the TPM is opened) so that a conflict ends start-up at once; listened on
/// only when tpmd can serve, so that a client that finds the socket finds tpmd ready.
pub struct ClaimedPath {
    path: PathBuf,
    admission: Admission,
    lock: Flock<File>,
}

/// The listening socket. Dropping it removes the socket file, then releases the lock.
pub struct SocketServer {
    listener: UnixListener,
    path: PathBuf,
    admission: Admission,
    guid: OwnedGuid,
    _lock: Flock<File>,
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl ClaimedPath {
    /// Takes the socket path (see the module doc): creates the directory if asked,
    /// takes the lock, and removes a stale socket file.
    pub fn claim(options: &SocketOptions) -> Result<ClaimedPath, SocketError> {
        let path = options.path.clone();
        if let (Some(mode), Some(dir)) = (options.create_dir, path.parent()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|source| SocketError::Directory {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let lock_file = lock_path(&path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_file)
            .map_err(|source| SocketError::LockFile {
                path: lock_file.clone(),
                source,
            })?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| SocketError::InUse { path: path.clone() })?;
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => {
                // We hold the lock, so no live tpmd serves it: a killed one left it.
                std::fs::remove_file(&path).map_err(|source| SocketError::Stale {
                    path: path.clone(),
                    source,
                })?;
                info!(path = %path.display(), "removed a stale socket");
            }
            Ok(_) => return Err(SocketError::NotASocket { path }),
            Err(_) => {}
        }
        Ok(ClaimedPath {
            path,
            admission: options.admission,
            lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Listens on the path. Must run inside the tokio runtime.
    pub fn listen(self) -> Result<SocketServer, SocketError> {
        let ClaimedPath {
            path,
            admission,
            lock,
        } = self;
        let bind_error = |source| SocketError::Bind {
            path: path.clone(),
            source,
        };
        let listener = UnixListener::bind(&path).map_err(bind_error)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(admission.mode()))
            .map_err(bind_error)?;
        Ok(SocketServer {
            listener,
            path,
            admission,
            guid: zbus::Guid::generate().into(),
            _lock: lock,
        })
    }
}

impl SocketServer {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until the task is dropped; dropping it ends every connection.
    pub async fn serve(self, daemon: Daemon) {
        let limits = Arc::new(ConnectionLimits::default());
        let own_uid = nix::unistd::getuid().as_raw();
        let mut connections = JoinSet::new();
        let mut last_warning: Option<Instant> = None;
        let mut warn_throttled = |message: String| {
            if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                warn!("{message}");
                last_warning = Some(Instant::now());
            } else {
                debug!("{message}");
            }
        };
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: let connections end.
                    warn_throttled(format!("cannot accept on {}: {e}", self.path.display()));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let peer = match stream.peer_cred() {
                Ok(cred) => Peer {
                    uid: cred.uid(),
                    pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
                },
                Err(e) => {
                    debug!("no peer credentials on a new connection: {e}");
                    continue;
                }
            };
            if !self.admission.admits(peer.uid, own_uid) {
                warn_throttled(format!(
                    "refused a connection from uid {} on {}: this tpmd serves its own user",
                    peer.uid,
                    self.path.display()
                ));
                continue;
            }
            let Some(slot) = limits.acquire(peer.uid) else {
                warn_throttled(format!(
                    "refused a connection from uid {}: too many open connections ({}); it can use the bus",
                    peer.uid,
                    limits.describe()
                ));
                continue;
            };
            let (daemon, guid) = (daemon.clone(), self.guid.clone());
            connections.spawn(async move {
                serve_connection(stream, peer, guid, daemon).await;
                drop(slot);
            });
        }
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        // Still ours: the lock is held until after this.
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_connection(mut stream: UnixStream, peer: Peer, guid: OwnedGuid, daemon: Daemon) {
    if let Err(e) =
        handshake::authenticate(&mut stream, peer.uid, guid.as_str(), HANDSHAKE_TIMEOUT).await
    {
        debug!(
            uid = peer.uid,
            pid = peer.pid,
            "socket handshake failed: {e}"
        );
        return;
    }
    let connection =
        zbus::connection::Builder::authenticated_socket(PeerStream::new(stream, peer), guid)
            .p2p()
            .serve_at(OBJECT_PATH, daemon)
            .build()
            .await;
    match connection {
        Ok(connection) => {
            debug!(
                uid = peer.uid,
                pid = peer.pid,
                "client connected on the socket"
            );
            connection.closed().await;
            debug!(uid = peer.uid, pid = peer.pid, "client left");
        }
        Err(e) => debug!(uid = peer.uid, "cannot set up a socket connection: {e}"),
    }
}
