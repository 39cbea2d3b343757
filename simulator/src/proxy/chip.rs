//! The proxy's single path to swtpm: one connection, one lock for the whole TPM (the
//! kernel's chip lock), a count of every command by code, and the latency model.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::kernel_rm::{wire, Transmit};
use crate::latency::LatencyProfile;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// swtpm takes seconds for an RSA key generation; far beyond that it is stuck.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Larger than any TPM 2.0 or 1.2 response.
const MAX_RESPONSE: usize = 64 * 1024;

/// The byte stream to swtpm's data channel.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn as_rw(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The connection to swtpm's data channel. On a TCP port it is opened on first use and
/// reopened after an error. A private simulator's channel is one end of a socket pair
/// (the other is swtpm's): it cannot be reopened, and closing it ends swtpm.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// `None` for the socket pair.
    addr: Option<SocketAddr>,
    stream: Option<Stream>,
}

impl Upstream {
    pub(crate) fn tcp(port: u16) -> Upstream {
        Upstream {
            addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            stream: None,
        }
    }

    pub(crate) fn pair(stream: UnixStream) -> io::Result<Upstream> {
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        Ok(Upstream {
            addr: None,
            stream: Some(Stream::Unix(stream)),
        })
    }

    /// Closes a TCP connection, so that another client of swtpm (which serves one at a
    /// time) can be served. The socket pair is kept: it is swtpm's only channel.
    pub(crate) fn disconnect(&mut self) {
        if self.addr.is_some() {
            self.stream = None;
        }
    }

    fn connected(&mut self) -> io::Result<&mut Stream> {
        if self.stream.is_none() {
            let Some(addr) = self.addr else {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the channel to the private swtpm broke; swtpm has exited",
                ));
            };
            let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
            stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
            stream.set_nodelay(true)?;
            self.stream = Some(Stream::Tcp(stream));
        }
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Sends one command and reads its response.
    pub(crate) fn exchange(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        let result = Self::exchange_on(self.connected()?.as_rw(), command);
        if result.is_err() {
            // Out of step with swtpm: on the socket pair this also ends swtpm, which
            // is what a TPM that stopped answering deserves.
            self.stream = None;
        }
        result
    }

    fn exchange_on(stream: &mut dyn ReadWrite, command: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(command)?;
        let mut response = vec![0u8; wire::HEADER_SIZE];
        stream.read_exact(&mut response)?;
        let size = wire::size(&response).unwrap_or_default() as usize;
        if !(wire::HEADER_SIZE..=MAX_RESPONSE).contains(&size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("swtpm sent a response of {size} bytes"),
            ));
        }
        response.resize(size, 0);
        stream.read_exact(&mut response[wire::HEADER_SIZE..])?;
        Ok(response)
    }
}

/// What every client thread shares.
#[derive(Debug)]
pub(crate) struct Chip {
    upstream: Mutex<Upstream>,
    counts: Mutex<BTreeMap<u32, u64>>,
    /// The same commands in the order they reached the TPM, up to [`SEQUENCE_LIMIT`].
    sequence: Mutex<Vec<u32>>,
    capture: Option<Mutex<Vec<u8>>>,
    latency: Option<LatencyProfile>,
}

/// Bytes of TPM traffic a capture keeps.
const CAPTURE_LIMIT: usize = 64 << 20;

/// Commands remembered in order; a long benchmark keeps its counts but not its order.
const SEQUENCE_LIMIT: usize = 100_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking client thread must not take the TPM away from the others.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Chip {
    pub(crate) fn new(upstream: Upstream, latency: Option<LatencyProfile>, capture: bool) -> Chip {
        Chip {
            upstream: Mutex::new(upstream),
            counts: Mutex::new(BTreeMap::new()),
            sequence: Mutex::new(Vec::new()),
            capture: capture.then(|| Mutex::new(Vec::new())),
            latency,
        }
    }

    /// Takes the chip lock: until the returned value is dropped, nobody else reaches
    /// the TPM.
    pub(crate) fn access(&self) -> ChipAccess<'_> {
        ChipAccess {
            upstream: lock(&self.upstream),
            chip: self,
        }
    }

    pub(crate) fn counts(&self) -> BTreeMap<u32, u64> {
        lock(&self.counts).clone()
    }

    pub(crate) fn capture(&self) -> Vec<u8> {
        self.capture
            .as_ref()
            .map(|c| lock(c).clone())
            .unwrap_or_default()
    }

    fn record(&self, bytes: &[u8]) {
        if let Some(capture) = &self.capture {
            let mut capture = lock(capture);
            if capture.len() + bytes.len() <= CAPTURE_LIMIT {
                capture.extend_from_slice(bytes);
            }
        }
    }

    pub(crate) fn sequence(&self) -> Vec<u32> {
        lock(&self.sequence).clone()
    }

    pub(crate) fn reset_counts(&self) {
        lock(&self.counts).clear();
        lock(&self.sequence).clear();
    }

    pub(crate) fn latency(&self) -> Option<&LatencyProfile> {
        self.latency.as_ref()
    }
}

/// The chip lock, held.
pub(crate) struct ChipAccess<'a> {
    upstream: MutexGuard<'a, Upstream>,
    chip: &'a Chip,
}

impl ChipAccess<'_> {
    /// A command that is neither counted nor delayed: what the kernel sends at boot.
    pub(crate) fn transmit_uncounted(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        self.upstream.exchange(command)
    }

    /// Lets go of a TCP connection to swtpm (see [`Upstream::disconnect`]).
    pub(crate) fn disconnect(&mut self) {
        self.upstream.disconnect();
    }
}

/// TPM_RC_RETRY and TPM_RC_TESTING: the kernel sends the command again.
const RC_RETRY: u32 = 0x922;
const RC_TESTING: u32 = 0x90A;
const CC_SELF_TEST: u32 = 0x143;
/// The kernel's first wait before a resend (TPM2_DURATION_SHORT); each wait doubles,
/// and it gives up once the wait would exceed TPM2_DURATION_LONG.
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(20);
const RETRY_LAST_WAIT: Duration = Duration::from_millis(2000);

impl ChipAccess<'_> {
    /// One attempt: counted, sent, and with a latency profile held until the profile's
    /// time for the command has passed since it was sent.
    fn attempt(&mut self, cc: u32, command: &[u8]) -> io::Result<Vec<u8>> {
        *lock(&self.chip.counts).entry(cc).or_default() += 1;
        {
            let mut sequence = lock(&self.chip.sequence);
            if sequence.len() < SEQUENCE_LIMIT {
                sequence.push(cc);
            }
        }
        self.chip.record(command);
        let sent = Instant::now();
        let response = self.upstream.exchange(command)?;
        self.chip.record(&response);
        if let Some(profile) = &self.chip.latency {
            let target = profile.sample(cc, wire::key_kind(command, &response));
            if let Some(rest) = target.checked_sub(sent.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        Ok(response)
    }
}

impl Transmit for ChipAccess<'_> {
    /// Sends a command as the kernel's `tpm_transmit` does, for `/dev/tpm0` and
    /// `/dev/tpmrm0` alike: a TPM_RC_RETRY or TPM_RC_TESTING answer is not returned
    /// but the command is sent again after 20, 40, 80... ms, up to 2 s.
    fn transmit(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        let cc = wire::code(command).unwrap_or_default();
        let mut wait = RETRY_FIRST_WAIT;
        loop {
            let response = self.attempt(cc, command)?;
            let rc = wire::code(&response).unwrap_or_default();
            let again = (rc == RC_RETRY || (rc == RC_TESTING && cc != CC_SELF_TEST))
                && wait <= RETRY_LAST_WAIT;
            if !again {
                return Ok(response);
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
}
