//! A proxy in front of swtpm that makes it look like a real machine's TPM: through the
//! kernel resource manager model ([`crate::kernel_rm`], like `/dev/tpmrm0`) or not
//! (like `/dev/tpm0`), and as slow as a real chip ([`crate::latency`]) or not. The two
//! options are independent.
//!
//! Clients speak the swtpm data protocol (a TPM command in, its response out) on a
//! unix socket in a private 0700 directory and, optionally:
//!
//! - on loopback TCP port Q, where Q+1 relays swtpm's control channel, so that TSS
//!   clients with the swtpm TCTI (tss-esapi, tpm2-tools) work unchanged. That TCTI
//!   opens a new connection for every command, so through the kernel model each of its
//!   commands is a fresh space: fine without the kernel model, useless with it.
//!   (tpmd's own transport keeps its connection, over TCP or the unix socket.)
//! - on loopback TCP port M with the Microsoft simulator protocol (M+1: platform
//!   signals, acknowledged and ignored), for TSS clients with the `mssim` TCTI, which
//!   keeps one connection, as an ESYS context on `/dev/tpmrm0` keeps one open file.
//!
//! Commands reach swtpm one at a time over one connection, under one lock held for a
//! whole command, including the kernel model's loads and saves and the latency delay.
//! Without the kernel model every client shares the TPM's handles, as threads of one
//! process sharing `/dev/tpm0` would; with it each connection is one space.
//!
//! Every command that reaches swtpm is counted by command code ([`Proxy::counts`]).

mod chip;
mod mssim;
mod workers;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::errno::Errno;

use crate::kernel_rm::{wire, CommandTable, Space, Transmit};
use crate::latency::LatencyProfile;
use crate::ports;
pub(crate) use chip::Upstream;
use chip::{Chip, ChipAccess};
use workers::Workers;

const SOCKET_NAME: &str = "tpm.sock";

/// What the proxy does between its clients and swtpm.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Model the kernel resource manager: each connection is a `/dev/tpmrm0` space.
    pub kernel_rm: bool,
    /// Delay each command as the profile says.
    pub latency: Option<LatencyProfile>,
    /// Also listen on loopback TCP: data on a port Q, swtpm's control channel on Q+1.
    pub tcp: bool,
    /// Also listen on loopback TCP with the Microsoft simulator protocol (mssim TCTI).
    pub mssim: bool,
    /// Keep every byte that crosses to and from swtpm, as a bus sniffer would see it.
    pub capture: bool,
}

impl ProxyOptions {
    /// `/dev/tpmrm0` at swtpm's speed, on the unix socket only.
    pub fn kernel_rm() -> ProxyOptions {
        ProxyOptions {
            kernel_rm: true,
            ..ProxyOptions::default()
        }
    }

    /// `/dev/tpm0` at swtpm's speed (counting only), on the unix socket only.
    pub fn raw_device() -> ProxyOptions {
        ProxyOptions::default()
    }

    /// Also listen on loopback TCP, with the swtpm and the mssim protocols. Any local
    /// user can connect there, unlike the unix socket in its 0700 directory.
    pub fn with_tcp_listeners(mut self) -> ProxyOptions {
        self.tcp = true;
        self.mssim = true;
        self
    }

    /// Keep a capture of the TPM channel ([`Proxy::capture`]).
    pub fn with_capture(mut self) -> ProxyOptions {
        self.capture = true;
        self
    }

    pub fn with_latency(mut self, profile: LatencyProfile) -> ProxyOptions {
        self.latency = Some(profile);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot create the proxy's socket directory: {0}; check that TMPDIR is writable")]
    Dir(#[source] io::Error),
    #[error("cannot listen on {what}: {source}")]
    Listen {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("no free pair of loopback ports for the proxy; free some ports")]
    NoFreePorts,
    #[error("cannot read the TPM's command list from swtpm on {swtpm}: {reason}; is it a TPM 2.0 and running?")]
    Commands { swtpm: String, reason: String },
    #[error("a private simulator is reachable through its unix socket only; TCP listeners are not offered")]
    PrivateTcp,
    #[error("a private simulator keeps the proxy it was started with; choose the proxy's options in start_private")]
    PrivateProxy,
}

/// A client connection, kept so that stopping the proxy can end it.
#[derive(Debug)]
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn shutdown(&self) {
        // Already closed is fine.
        let _ = match self {
            Conn::Unix(s) => s.shutdown(Shutdown::Both),
            Conn::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

#[derive(Debug)]
struct Shared {
    chip: Chip,
    commands: Option<CommandTable>,
    stopping: AtomicBool,
    next_id: AtomicU64,
    conns: Mutex<BTreeMap<u64, Conn>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    workers: Workers,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Remembers a connection for shutdown; its id lets the owner forget it.
    fn register(&self, conn: Conn) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        lock(&self.conns).insert(id, conn);
        id
    }

    fn forget(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    fn spawn(self: &Arc<Self>, work: impl FnOnce(Arc<Shared>) + Send + 'static) {
        let shared = Arc::clone(self);
        let handle = std::thread::spawn(move || work(shared));
        lock(&self.threads).push(handle);
    }
}

/// A running proxy. Dropping it closes every client connection and stops listening.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    socket: PathBuf,
    tcp_port: Option<u16>,
    mssim_port: Option<u16>,
    /// The directory of the socket when the proxy made it. Declared last: removed after
    /// the listeners are gone.
    dir: Option<tempfile::TempDir>,
}

impl Proxy {
    /// Starts a proxy for the swtpm whose data port is `swtpm_port` (control on the
    /// next port), listening in a fresh private directory. With the kernel model it
    /// first reads the TPM's command list, as the kernel does at boot (not counted).
    pub fn start(swtpm_port: u16, options: ProxyOptions) -> Result<Proxy, ProxyError> {
        let ctrl_port = swtpm_port.checked_add(1).ok_or(ProxyError::NoFreePorts)?;
        let dir = tempfile::Builder::new()
            .prefix("tpmd-proxy-")
            .tempdir()
            .map_err(ProxyError::Dir)?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(ProxyError::Dir)?;
        let socket = dir.path().join(SOCKET_NAME);
        let ctrl = SocketAddr::from((Ipv4Addr::LOCALHOST, ctrl_port));
        let mut proxy = Self::launch(
            Upstream::tcp(swtpm_port),
            Some(ctrl),
            socket,
            options,
            &swtpm_port.to_string(),
        )?;
        proxy.dir = Some(dir);
        Ok(proxy)
    }

    /// Starts a proxy for a private swtpm whose data channel is `upstream` (a socket
    /// pair, see [`crate::Simulator::start_private`]), listening on `socket` (mode
    /// 0600). The proxy then is the only way to swtpm, so it takes no TCP listeners.
    pub(crate) fn start_private(
        upstream: Upstream,
        socket: PathBuf,
        options: ProxyOptions,
    ) -> Result<Proxy, ProxyError> {
        if options.tcp || options.mssim {
            return Err(ProxyError::PrivateTcp);
        }
        Self::launch(upstream, None, socket, options, "its socket pair")
    }

    fn launch(
        upstream: Upstream,
        swtpm_ctrl: Option<SocketAddr>,
        socket: PathBuf,
        options: ProxyOptions,
        swtpm_name: &str,
    ) -> Result<Proxy, ProxyError> {
        let chip = Chip::new(upstream, options.latency.clone(), options.capture);
        let commands = if options.kernel_rm {
            let mut access = chip.access();
            let table = read_command_table(&mut access).map_err(|reason| ProxyError::Commands {
                swtpm: swtpm_name.to_string(),
                reason,
            })?;
            drop(access);
            Some(table)
        } else {
            None
        };
        let listen_err = |source| ProxyError::Listen {
            what: socket.display().to_string(),
            source,
        };
        let unix = UnixListener::bind(&socket).map_err(listen_err)?;
        // The directory already keeps other users out; the mode says so again.
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(listen_err)?;
        let shared = Arc::new(Shared {
            chip,
            commands,
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(BTreeMap::new()),
            threads: Mutex::new(Vec::new()),
            workers: Workers::new(),
        });
        shared.spawn(move |shared| accept_unix(unix, shared));
        let mut proxy = Proxy {
            shared,
            socket,
            tcp_port: None,
            mssim_port: None,
            dir: None,
        };
        if options.tcp {
            let Some(ctrl) = swtpm_ctrl else {
                return Err(ProxyError::PrivateTcp);
            };
            let (data, ctrl_listener, port) = Self::listen_pair()?;
            proxy.tcp_port = Some(port);
            proxy
                .shared
                .spawn(move |shared| accept_tcp(data, shared, Framing::Swtpm));
            proxy
                .shared
                .spawn(move |shared| accept_ctrl(ctrl_listener, ctrl, shared));
        }
        if options.mssim {
            let (data, platform, port) = Self::listen_pair()?;
            proxy.mssim_port = Some(port);
            proxy
                .shared
                .spawn(move |shared| accept_tcp(data, shared, Framing::Mssim));
            proxy
                .shared
                .spawn(move |shared| accept_platform(platform, shared));
        }
        Ok(proxy)
    }

    /// Listeners on a free loopback port pair P, P+1.
    fn listen_pair() -> Result<(TcpListener, TcpListener, u16), ProxyError> {
        let port = ports::pick_pair(64).ok_or(ProxyError::NoFreePorts)?;
        let bind = |p: u16| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).map_err(|source| ProxyError::Listen {
                what: format!("127.0.0.1:{p}"),
                source,
            })
        };
        let data = bind(port);
        let ctrl = bind(port.saturating_add(1));
        match (data, ctrl) {
            (Ok(data), Ok(ctrl)) => Ok((data, ctrl, port)),
            (Err(e), _) | (_, Err(e)) => {
                ports::release_pair(port);
                Err(e)
            }
        }
    }

    /// The unix socket clients connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The loopback TCP data port, if the proxy listens on TCP; swtpm's control channel
    /// is relayed on the next port.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp_port
    }

    /// The loopback TCP port of the mssim protocol, if the proxy speaks it; its
    /// platform port is the next one.
    pub fn mssim_port(&self) -> Option<u16> {
        self.mssim_port
    }

    /// A tpm2-tss TCTI configuration for the mssim listener
    /// (`mssim:host=127.0.0.1,port=M`), for `TPM2TOOLS_TCTI` or tss-esapi.
    pub fn mssim_tcti(&self) -> Option<String> {
        self.mssim_port
            .map(|port| format!("mssim:host=127.0.0.1,port={port}"))
    }

    /// Whether connections are `/dev/tpmrm0` spaces.
    pub fn kernel_rm(&self) -> bool {
        self.shared.commands.is_some()
    }

    pub fn latency(&self) -> Option<&LatencyProfile> {
        self.shared.chip.latency()
    }

    /// How many commands reached swtpm, by command code, since start or the last
    /// [`Proxy::reset_counts`].
    pub fn counts(&self) -> BTreeMap<u32, u64> {
        self.shared.chip.counts()
    }

    /// The command codes that reached swtpm, in order, since start or the last
    /// [`Proxy::reset_counts`] (the first 100000).
    pub fn sequence(&self) -> Vec<u32> {
        self.shared.chip.sequence()
    }

    /// Every byte of every command and response that crossed to swtpm since start (with
    /// [`ProxyOptions::with_capture`]; the first 64 MiB).
    pub fn capture(&self) -> Vec<u8> {
        self.shared.chip.capture()
    }

    /// Forgets the counts and the sequence.
    pub fn reset_counts(&self) {
        self.shared.chip.reset_counts();
    }

    /// Runs `f` while holding the TPM with the proxy's TCP connection to swtpm closed,
    /// so that `f` can talk to swtpm itself (swtpm serves one client at a time).
    pub fn with_tpm_released<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut access = self.shared.chip.access();
        access.disconnect();
        f()
    }

    /// Runs `f` while holding the TPM, with a function that sends a command to swtpm
    /// through the proxy's own channel, neither counted nor delayed: how a private
    /// simulator, whose only channel the proxy holds, is reset.
    pub(crate) fn with_tpm_held<T>(
        &self,
        f: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<Vec<u8>>) -> T,
    ) -> T {
        let mut access = self.shared.chip.access();
        f(&mut |command| access.transmit_uncounted(command))
    }

    fn wake_listeners(&self) {
        let _ = UnixStream::connect(&self.socket);
        for port in [self.tcp_port, self.mssim_port].into_iter().flatten() {
            let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, port));
            let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, port.saturating_add(1)));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.wake_listeners();
        self.shared.workers.close();
        for conn in lock(&self.shared.conns).values() {
            conn.shutdown();
        }
        // Threads started while joining are picked up by the next round.
        loop {
            let threads = std::mem::take(&mut *lock(&self.shared.threads));
            if threads.is_empty() {
                break;
            }
            for thread in threads {
                let _ = thread.join();
            }
        }
        for port in [self.tcp_port, self.mssim_port].into_iter().flatten() {
            ports::release_pair(port);
        }
        if self.dir.is_none() {
            // In a directory someone else owns; ours goes with its directory.
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

/// GetCapability(TPM_CAP_COMMANDS) for all the TPM's commands, as the kernel's
/// `tpm2_get_cc_attrs_tbl` does at boot.
fn read_command_table(access: &mut ChipAccess<'_>) -> Result<CommandTable, String> {
    let query = |access: &mut ChipAccess<'_>, cap, property, count| {
        let response = access
            .transmit_uncounted(&wire::get_capability(cap, property, count))
            .map_err(|e| e.to_string())?;
        wire::capability_words(&response, cap).ok_or_else(|| {
            format!(
                "GetCapability answered 0x{:08x}",
                wire::code(&response).unwrap_or_default()
            )
        })
    };
    let (_, total) = query(access, wire::CAP_TPM_PROPERTIES, wire::PT_TOTAL_COMMANDS, 1)?;
    let total = match total.as_slice() {
        [wire::PT_TOTAL_COMMANDS, n] => *n,
        _ => return Err("no TPM_PT_TOTAL_COMMANDS".into()),
    };
    let mut attrs: Vec<u32> = Vec::new();
    let mut next = wire::CC_FIRST;
    loop {
        let (more, words) = query(access, wire::CAP_COMMANDS, next, total)?;
        let Some(&last) = words.last() else { break };
        attrs.extend(&words);
        next = (last & 0xFFFF) + 1;
        if !more {
            break;
        }
    }
    if attrs.is_empty() {
        return Err("the TPM lists no commands".into());
    }
    Ok(CommandTable::from_attributes(attrs))
}

fn accept_unix(listener: UnixListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = shared.register(Conn::Unix(clone));
        Workers::run(&shared, move |shared| {
            serve(stream, shared, Framing::Swtpm);
            shared.forget(id);
        });
    }
}

fn accept_tcp(listener: TcpListener, shared: Arc<Shared>, framing: Framing) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = shared.register(Conn::Tcp(clone));
        Workers::run(&shared, move |shared| {
            match framing {
                Framing::Mssim => serve(mssim::QuickAck(stream), shared, framing),
                Framing::Swtpm => serve(stream, shared, framing),
            }
            shared.forget(id);
        });
    }
}

/// Relays swtpm's control channel unchanged, one upstream connection per client.
fn accept_ctrl(listener: TcpListener, swtpm_ctrl: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(client) = client else { continue };
        let Ok(upstream) = TcpStream::connect(swtpm_ctrl) else {
            continue;
        };
        let clones = (
            client.try_clone(),
            client.try_clone(),
            upstream.try_clone(),
            upstream.try_clone(),
        );
        let (Ok(client_out), Ok(client_kept), Ok(upstream_out), Ok(upstream_kept)) = clones else {
            continue;
        };
        let ids = [
            shared.register(Conn::Tcp(client_kept)),
            shared.register(Conn::Tcp(upstream_kept)),
        ];
        shared.spawn(move |_| relay(client, upstream_out));
        shared.spawn(move |shared| {
            relay(upstream, client_out);
            for id in ids {
                shared.forget(id);
            }
        });
    }
}

fn accept_platform(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = shared.register(Conn::Tcp(clone));
        shared.spawn(move |shared| {
            mssim::serve_platform(stream);
            shared.forget(id);
        });
    }
}

fn relay(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// How commands and responses are framed on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// swtpm's data channel: the bare command, the bare response.
    Swtpm,
    /// The Microsoft simulator protocol.
    Mssim,
}

impl Framing {
    fn read(self, stream: &mut impl Read) -> Incoming {
        match self {
            Framing::Swtpm => read_command(stream),
            Framing::Mssim => mssim::read_command(stream),
        }
    }

    fn write(self, stream: &mut impl Write, response: &[u8]) -> io::Result<()> {
        match self {
            Framing::Swtpm => stream.write_all(response),
            Framing::Mssim => mssim::write_response(stream, response),
        }
    }
}

enum Incoming {
    Command(Vec<u8>),
    Closed,
    Refused(Errno),
}

/// One command from the client: a header, then as many bytes as it announces.
fn read_command(stream: &mut impl Read) -> Incoming {
    let mut command = vec![0u8; wire::HEADER_SIZE];
    if stream.read_exact(&mut command).is_err() {
        return Incoming::Closed;
    }
    let size = wire::size(&command).unwrap_or_default() as usize;
    if size < wire::HEADER_SIZE {
        return Incoming::Refused(Errno::EINVAL);
    }
    if size > wire::MAX_COMMAND_SIZE {
        return Incoming::Refused(Errno::E2BIG);
    }
    command.resize(size, 0);
    match stream.read_exact(&mut command[wire::HEADER_SIZE..]) {
        Ok(()) => Incoming::Command(command),
        Err(_) => Incoming::Closed,
    }
}

/// Serves one client connection until it closes.
fn serve(mut stream: impl Read + Write, shared: &Shared, framing: Framing) {
    let mut space = Space::default();
    while !shared.stopping() {
        let command = match framing.read(&mut stream) {
            Incoming::Command(command) => command,
            Incoming::Closed => break,
            Incoming::Refused(errno) => {
                // The stream cannot be resynchronised after a bad size: answer, close.
                let _ = framing.write(&mut stream, &wire::write_error_response(errno as i32));
                break;
            }
        };
        let response = {
            let mut access = shared.chip.access();
            match &shared.commands {
                Some(table) => space
                    .transact(table, &mut access, &command)
                    .unwrap_or_else(|errno| wire::write_error_response(errno as i32)),
                None => match access.transmit(&command) {
                    Ok(response) => response,
                    // Like a device whose TPM stopped answering.
                    Err(_) => break,
                },
            }
        };
        if framing.write(&mut stream, &response).is_err() {
            break;
        }
    }
    if shared.commands.is_some() {
        space.close(&mut shared.chip.access());
    }
}
