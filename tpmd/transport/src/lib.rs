//! Moving TPM command bytes to a TPM and response bytes back, for both families: a
//! character device (`/dev/tpm0`, `/dev/tpmrm0`), or a swtpm data channel over TCP or a
//! unix socket. A TPM answers each command with exactly one response whose header
//! carries its size, so the framing needs no TPM knowledge beyond that header.
//!
//! Every command sent through a [`Connection`] with a [`CommandCounter`] is counted by
//! command code (bytes 6..10 of the command, ordinal on a 1.2), which is how tpmd reports
//! what it sends and how tests assert exact command sequences.

mod counter;
mod transport;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use counter::{command_code, CommandCounter};
pub use transport::{
    is_kernel_rm_device, NoTpm, ParseError, Transport, KERNEL_RM_DEVICE, RAW_DEVICE,
};

/// The largest response either family produces (TPM 1.2 and 2.0 both stay well below).
pub const MAX_RESPONSE: usize = 8192;
const HEADER: usize = 10;
/// A TPM key generation can take a minute on real hardware.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// What the kernel answers on /dev/tpmrm0 when a connection would hold a fourth object.
const ENOMEM: i32 = 12;
const EFAULT: i32 = 14;
const EINVAL: i32 = 22;
/// Response codes of the kernel model that stand for a failed write().
const MODEL_ERRNO: u32 = 0x000B_F000;
const EBUSY: i32 = 16;
/// How long a held swtpm connection may serve a burst before it is closed and opened
/// again, so that a program waiting in swtpm's accept queue gets its turn in between.
const MAX_HOLD: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to the TPM simulator at {target}: {source}; is swtpm running?")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the TPM device {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("TPM I/O on {target} failed: {source}")]
    Io {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("the kernel resource manager on {target} refused the command: one connection may hold at most 3 objects")]
    KernelRmFull { target: String },
    /// The kernel resource manager failed the command (EFAULT once the TPM lost the
    /// connection's saved contexts, EINVAL for a handle it no longer maps): what the
    /// connection held is gone, and a new connection is needed.
    #[error("the kernel resource manager on {target} failed the command (errno {errno}); the connection's objects are lost")]
    KernelRmFailed { target: String, errno: i32 },
    #[error("the TPM at {target} sent a response of {size} bytes, which is not a TPM response")]
    BadSize { target: String, size: usize },
}

impl TransportError {
    /// The connection is gone or unusable: reconnecting may help.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            TransportError::Io { .. }
                | TransportError::BadSize { .. }
                | TransportError::KernelRmFailed { .. }
        )
    }
}

#[derive(Debug)]
enum Channel {
    Tcp(TcpStream),
    Unix(UnixStream),
    Device(File),
}

/// A connection to a TPM. On `/dev/tpmrm0` each connection is its own space: objects
/// loaded through one are invisible to another. To a swtpm it is re-established for
/// each command (see [`Transport::connects_per_command`]), unless it is
/// [held](Connection::hold_between_commands).
#[derive(Debug)]
pub struct Connection {
    transport: Transport,
    target: String,
    channel: Option<Channel>,
    /// When the channel was opened; a held swtpm channel is reopened after [`MAX_HOLD`].
    opened: Instant,
    /// To a swtpm: keep the channel between commands until [`Connection::release`].
    hold: bool,
    counter: Option<CommandCounter>,
}

impl Connection {
    /// Opens `transport`; commands are counted in `counter` if given. Fails at once if
    /// the TPM cannot be reached.
    pub fn open(
        transport: &Transport,
        counter: Option<CommandCounter>,
    ) -> Result<Connection, TransportError> {
        let target = transport.to_string();
        let channel = open_channel(transport, &target)?;
        let channel = (!transport.connects_per_command()).then_some(channel);
        Ok(Connection {
            transport: transport.clone(),
            target,
            channel,
            opened: Instant::now(),
            hold: false,
            counter,
        })
    }

    /// To a swtpm, keeps the channel open from one command to the next instead of
    /// connecting for each: a connect costs swtpm an accept and a close, about a tenth of
    /// a hot ECDSA signature on loopback. swtpm serves one client at a time, so whoever
    /// holds a connection must [`release`](Connection::release) it when idle, and must
    /// not send commands through a second connection to the same swtpm meanwhile (that
    /// one would wait behind the held one for ever). Through a burst the channel is
    /// reopened every 20 ms, which lets a program waiting for swtpm in between.
    /// Other transports keep their connection anyway.
    pub fn hold_between_commands(mut self) -> Connection {
        self.hold = true;
        self
    }

    /// Closes a held swtpm channel, so that other programs can reach the simulator; the
    /// next command connects again. A no-op on other transports, whose connection is
    /// what holds the caller's objects.
    pub fn release(&mut self) {
        if self.transport.connects_per_command() {
            self.channel = None;
        }
    }

    /// Sends one command and returns the whole response.
    pub fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if let Some(counter) = &self.counter {
            counter.count(command);
        }
        let mut channel = match self.channel.take() {
            Some(channel) if self.still_usable(&channel) => channel,
            _ => {
                let channel = open_channel(&self.transport, &self.target)?;
                self.opened = Instant::now();
                channel
            }
        };
        let result = exchange_on(&mut channel, command, &self.target);
        // A stream that failed mid-exchange is out of step; the next command opens a
        // new one (on a kernel resource manager, a new space: the caller knows that
        // what it held is gone because this command failed).
        let result = match result {
            Ok(response) if matches!(self.transport, Transport::KernelRmSocket(_)) => {
                refused_by_model(response, &self.target)
            }
            other => other,
        };
        let broken = result.as_ref().is_err_and(|e| e.is_connection_lost());
        if (self.hold || !self.transport.connects_per_command()) && !broken {
            self.channel = Some(channel);
        }
        result
    }

    /// Whether a channel kept from the last command can carry the next: always, except
    /// a held swtpm channel past [`MAX_HOLD`] or one the simulator closed meanwhile (it
    /// was restarted, or reset and dropped its clients).
    fn still_usable(&self, channel: &Channel) -> bool {
        if !self.transport.connects_per_command() {
            return true;
        }
        self.opened.elapsed() < MAX_HOLD && idle_and_open(channel)
    }

    /// Where this connection goes, as the user wrote it.
    pub fn target(&self) -> &str {
        &self.target
    }
}

fn open_channel(endpoint: &Transport, target: &str) -> Result<Channel, TransportError> {
    let connect_err = |source| TransportError::Connect {
        target: target.to_string(),
        source,
    };
    let channel = match endpoint {
        Transport::Swtpm { host, port } => {
            let addr = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(connect_err)?
                .next()
                .ok_or_else(|| connect_err(io::Error::from(io::ErrorKind::NotFound)))?;
            let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(connect_err)?;
            stream
                .set_read_timeout(Some(IO_TIMEOUT))
                .and_then(|_| stream.set_write_timeout(Some(IO_TIMEOUT)))
                .and_then(|_| stream.set_nodelay(true))
                .map_err(connect_err)?;
            Channel::Tcp(stream)
        }
        Transport::SwtpmUnix(path) | Transport::KernelRmSocket(path) => {
            let stream = UnixStream::connect(path).map_err(connect_err)?;
            stream
                .set_read_timeout(Some(IO_TIMEOUT))
                .and_then(|_| stream.set_write_timeout(Some(IO_TIMEOUT)))
                .map_err(connect_err)?;
            Channel::Unix(stream)
        }
        Transport::Device(path) => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| TransportError::Open {
                    path: path.clone(),
                    reason: explain_open_error(&e),
                })?;
            Channel::Device(file)
        }
    };
    Ok(channel)
}

/// A stream between commands has nothing to read; readable means the peer closed it (or
/// sent what nobody asked for, which leaves it out of step just the same, so reading
/// that byte costs nothing).
fn idle_and_open(channel: &Channel) -> bool {
    fn check(mut stream: impl Read, nonblocking: impl Fn(bool) -> io::Result<()>) -> bool {
        if nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let idle =
            matches!(stream.read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        nonblocking(false).is_ok() && idle
    }
    match channel {
        Channel::Tcp(stream) => check(stream, |on| stream.set_nonblocking(on)),
        Channel::Unix(stream) => check(stream, |on| stream.set_nonblocking(on)),
        Channel::Device(_) => true,
    }
}

fn exchange_on(
    channel: &mut Channel,
    command: &[u8],
    target: &str,
) -> Result<Vec<u8>, TransportError> {
    let io_err = |source| TransportError::Io {
        target: target.to_string(),
        source,
    };
    match channel {
        Channel::Tcp(stream) => exchange(stream, command, target),
        Channel::Unix(stream) => exchange(stream, command, target),
        Channel::Device(file) => {
            // The driver takes a command in one write and returns the whole response
            // to one read.
            if let Err(e) = file.write_all(command) {
                if e.raw_os_error() == Some(ENOMEM) {
                    return Err(TransportError::KernelRmFull {
                        target: target.to_string(),
                    });
                }
                return Err(io_err(e));
            }
            let mut response = vec![0u8; MAX_RESPONSE];
            let n = file.read(&mut response).map_err(io_err)?;
            response.truncate(n);
            check_size(&response, target)?;
            Ok(response)
        }
    }
}

/// One command out, one size-framed response back, on a stream.
fn exchange(
    stream: &mut (impl Read + Write),
    command: &[u8],
    target: &str,
) -> Result<Vec<u8>, TransportError> {
    let io_err = |source| TransportError::Io {
        target: target.to_string(),
        source,
    };
    stream.write_all(command).map_err(io_err)?;
    let mut header = [0u8; HEADER];
    stream.read_exact(&mut header).map_err(io_err)?;
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if !(HEADER..=MAX_RESPONSE).contains(&size) {
        return Err(TransportError::BadSize {
            target: target.to_string(),
            size,
        });
    }
    let mut response = header.to_vec();
    response.resize(size, 0);
    stream.read_exact(&mut response[HEADER..]).map_err(io_err)?;
    Ok(response)
}

/// What a failed write to a kernel resource manager means.
fn kernel_rm_error(errno: i32, target: &str) -> Option<TransportError> {
    let target = target.to_string();
    match errno {
        ENOMEM => Some(TransportError::KernelRmFull { target }),
        EFAULT | EINVAL => Some(TransportError::KernelRmFailed { target, errno }),
        _ => None,
    }
}

/// The kernel model answers where the kernel would fail write() with a header-only
/// response whose code is `MODEL_ERRNO | errno` (the simulator crate's `kernel_rm`).
fn refused_by_model(response: Vec<u8>, target: &str) -> Result<Vec<u8>, TransportError> {
    let code = counter::command_code(&response).unwrap_or(0);
    if code & 0xFFFF_F000 != MODEL_ERRNO {
        return Ok(response);
    }
    let errno = (code & 0xFFF) as i32;
    Err(
        kernel_rm_error(errno, target).unwrap_or_else(|| TransportError::KernelRmFailed {
            target: target.to_string(),
            errno,
        }),
    )
}

fn check_size(response: &[u8], target: &str) -> Result<(), TransportError> {
    let declared = response
        .get(2..6)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if response.len() < HEADER || declared != Some(response.len()) {
        return Err(TransportError::BadSize {
            target: target.to_string(),
            size: response.len(),
        });
    }
    Ok(())
}

/// Why a device would not open, in the terms of the fix.
fn explain_open_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "it does not exist; is the TPM enabled in the firmware and the tpm_tis/tpm_crb driver loaded?".into(),
        io::ErrorKind::PermissionDenied => "permission denied; run tpmd as a member of group tss (udev/60-tpmd.rules gives the device to that group)".into(),
        _ if e.raw_os_error() == Some(EBUSY) => "it is busy: another program holds it open; use /dev/tpmrm0, which is shared, or stop that program".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_unix_socket_round_trip_is_framed_by_the_response_header() {
        let dir = std::env::temp_dir().join(format!("tpmd-transport-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("tpm.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            // The first connection only checks that the simulator is there.
            drop(listener.accept().unwrap());
            let (mut s, _) = listener.accept().unwrap();
            let mut cmd = [0u8; 12];
            s.read_exact(&mut cmd).unwrap();
            // A 12-byte response, written in two pieces.
            s.write_all(&[0x80, 0x01, 0, 0, 0, 12]).unwrap();
            s.write_all(&[0, 0, 0, 0, 0xAB, 0xCD]).unwrap();
            cmd
        });
        let counter = CommandCounter::default();
        let mut conn =
            Connection::open(&Transport::SwtpmUnix(path.clone()), Some(counter.clone())).unwrap();
        let command = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0];
        let response = conn.transmit(&command).unwrap();
        assert_eq!(response.len(), 12);
        assert_eq!(&response[10..], &[0xAB, 0xCD]);
        assert_eq!(server.join().unwrap(), command);
        assert_eq!(counter.get(0x144), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A server that answers every command on a connection with a 10-byte success, and
    /// counts the connections it accepted.
    fn counting_server(listener: UnixListener) -> Arc<AtomicUsize> {
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let mut cmd = [0u8; 10];
                while s.read_exact(&mut cmd).is_ok() {
                    if s.write_all(&[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]).is_err() {
                        break;
                    }
                }
            }
        });
        accepted
    }

    #[test]
    fn a_held_swtpm_connection_is_reused_until_released_or_closed() {
        let dir = std::env::temp_dir().join(format!("tpmd-hold-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("tpm.sock");
        let _ = std::fs::remove_file(&path);
        let accepted = counting_server(UnixListener::bind(&path).unwrap());
        let transport = Transport::SwtpmUnix(path.clone());
        let command = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x7B];
        let connections = || accepted.load(Ordering::SeqCst);

        // Not held: the opening probe, then one connection per command.
        let mut plain = Connection::open(&transport, None).unwrap();
        plain.transmit(&command).unwrap();
        plain.transmit(&command).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(connections(), 3);

        let mut held = Connection::open(&transport, None)
            .unwrap()
            .hold_between_commands();
        for _ in 0..5 {
            held.transmit(&command).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(connections(), 5, "the probe and one held connection");
        held.release();
        held.transmit(&command).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(connections(), 6, "a released connection is opened again");
        // Past MAX_HOLD, a burst gets a fresh connection, so waiting programs get a turn.
        std::thread::sleep(MAX_HOLD);
        held.transmit(&command).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(connections(), 7);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_held_connection_the_simulator_closed_is_replaced_not_failed() {
        let (client, server) = UnixStream::pair().unwrap();
        let mut channel = Channel::Unix(client);
        assert!(idle_and_open(&channel));
        drop(server);
        assert!(!idle_and_open(&channel));
        // A channel with unread bytes is out of step and is not reused either.
        let (client, mut server) = UnixStream::pair().unwrap();
        server.write_all(&[0]).unwrap();
        channel = Channel::Unix(client);
        assert!(!idle_and_open(&channel));
    }

    #[test]
    fn the_kernel_models_errno_answers_are_transport_errors() {
        let ok = vec![0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0];
        assert_eq!(refused_by_model(ok.clone(), "t").unwrap(), ok);
        let tpm_error = vec![0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x02];
        assert!(refused_by_model(tpm_error, "t").is_ok());
        let full = vec![0x80, 0x01, 0, 0, 0, 10, 0, 0x0B, 0xF0, 0x0C];
        assert!(matches!(
            refused_by_model(full, "t"),
            Err(TransportError::KernelRmFull { .. })
        ));
        let fault = vec![0x80, 0x01, 0, 0, 0, 10, 0, 0x0B, 0xF0, 0x0E];
        let err = refused_by_model(fault, "t").unwrap_err();
        assert!(err.is_connection_lost(), "{err}");
    }

    #[test]
    fn an_impossible_response_size_is_an_error() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            let mut cmd = [0u8; 10];
            b.read_exact(&mut cmd).unwrap();
            b.write_all(&[0x80, 0x01, 0xFF, 0, 0, 0, 0, 0, 0, 0])
                .unwrap();
        });
        let err = exchange(&mut a, &[0u8; 10], "test").unwrap_err();
        assert!(matches!(err, TransportError::BadSize { .. }), "{err}");
        server.join().unwrap();
    }
}
