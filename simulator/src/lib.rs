//! A swtpm TPM simulator for tpmd's tests and `tpmd --simulator`.
//!
//! [`Simulator::start`] runs `swtpm socket` on loopback TCP as a child process with its
//! state in a directory, waits until it listens, and (for TPM 2.0) provisions the SRK
//! at 0x81000001. swtpm serves one client at a time, so the harness never keeps a
//! connection open: tests and the daemon connect through [`Simulator::transport`].
//! Dropping the [`Simulator`] stops swtpm (SIGTERM, then SIGKILL).
//!
//! [`Simulator::start_with`] puts a [`proxy::Proxy`] in front of swtpm that behaves like
//! a real machine's TPM: the kernel resource manager of `/dev/tpmrm0`
//! ([`kernel_rm`]), the latency of a real chip ([`latency`]), or both;
//! [`Simulator::transport`] then leads to the proxy.
//!
//! [`Simulator::start_private`] is what `tpmd --simulator` runs: swtpm listens on no
//! TCP port, only its user can reach it (unix sockets of mode 0600 in a 0700
//! directory), and it exits with the process that started it, even after `kill -9`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tpmd_simulator::latency::LatencyProfile;
//! use tpmd_simulator::proxy::ProxyOptions;
//! use tpmd_tpm2::transport::Connection;
//!
//! let sim = tpmd_simulator::Simulator::start_temporary()?;
//! let connection = Connection::open(&sim.transport(), None)?;
//! # drop(connection);
//! sim.reset()?; // power-cycle: saved contexts become invalid, the SRK stays
//!
//! // /dev/tpmrm0 on a discrete TPM: each connection is one kernel space.
//! let options = ProxyOptions::kernel_rm().with_latency(LatencyProfile::load("discrete")?);
//! let rm = tpmd_simulator::Simulator::start_temporary_with(options)?;
//! let connection = Connection::open(&rm.transport(), None)?;
//! # drop(connection);
//! let reached_the_tpm = rm.proxy().map(|proxy| proxy.counts());
//! # drop(reached_the_tpm);
//! # Ok(())
//! # }
//! ```

mod control;
pub mod dictionary_attack;
mod error;
pub mod kernel_rm;
pub mod latency;
mod ports;
mod private;
mod process;
pub mod proxy;
mod tcp;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tpmd_tpm2::srk::provision_srk;
use tpmd_tpm2::tpm::Tpm;
use tpmd_tpm2::transport::Transport;

pub(crate) use crate::control::raw_command;
use crate::control::{startup_command, ControlChannel};
pub use crate::error::SimulatorError;
use crate::process::{find_program, lock_holder, lock_taken, prepare_state_dir, setup_tpm12};
use crate::proxy::{Proxy, ProxyOptions, Upstream};

/// How long swtpm may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long swtpm gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a start waits for another swtpm to let go of the state directory's lock: on
/// a restart right after a crash, the old swtpm is still on its way out.
const LOCK_WAIT: Duration = Duration::from_secs(3);
/// How many port pairs auto-selection tries when another process takes one first.
const PORT_RETRIES: u32 = 5;

/// Which TPM the simulator emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// TPM 2.0 (`swtpm socket --tpm2`).
    #[default]
    Tpm2,
    /// TPM 1.2: state prepared once by `swtpm_setup --take-ownership
    /// --owner-well-known --srk-well-known` (well-known owner and SRK secrets).
    Tpm12,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Tpm2 => "TPM 2.0",
            Family::Tpm12 => "TPM 1.2",
        })
    }
}

/// How to start a [`Simulator`].
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    pub family: Family,
    /// Where swtpm keeps its state (and where its log goes). Created with mode 0700 if
    /// missing; its parent must exist. State persists across restarts.
    pub state_dir: PathBuf,
    /// The data port P (the control channel is P+1). `None` picks a free loopback pair.
    pub port: Option<u16>,
    /// TPM 2.0: create the SRK at 0x81000001 if it is not there. TPM 1.2: when the state
    /// is first created, take ownership with the well-known owner and SRK secrets
    /// (otherwise the TPM stays unowned, as shipped).
    pub provision_srk: bool,
}

impl SimulatorOptions {
    /// TPM 2.0, automatic ports, SRK provisioned.
    pub fn new(state_dir: impl Into<PathBuf>) -> SimulatorOptions {
        SimulatorOptions {
            family: Family::Tpm2,
            state_dir: state_dir.into(),
            port: None,
            provision_srk: true,
        }
    }
}

/// A running swtpm. Dropping it stops swtpm; a temporary state directory is removed
/// afterwards.
#[derive(Debug)]
pub struct Simulator {
    child: Option<Child>,
    pid: u32,
    family: Family,
    /// swtpm's TCP data port; 0 for a private simulator, which has none.
    port: u16,
    control: ControlChannel,
    state_dir: PathBuf,
    log: PathBuf,
    srk_created: bool,
    proxy: Option<Proxy>,
    // Declared after the proxy and removed after swtpm has been stopped in
    // `Drop::drop`: a private simulator's socket directory, then a temporary state.
    socket_dir: Option<tempfile::TempDir>,
    _temp: Option<tempfile::TempDir>,
}

impl Simulator {
    /// Starts swtpm on loopback TCP as described by `opts` and waits until it listens.
    pub fn start(opts: SimulatorOptions) -> Result<Simulator, SimulatorError> {
        Self::start_inner(opts, None)
    }

    /// Starts swtpm as described by `opts`, then a proxy in front of it as described by
    /// `proxy` (see [`proxy::Proxy`]); [`Simulator::transport`] leads to the proxy.
    pub fn start_with(
        opts: SimulatorOptions,
        proxy: ProxyOptions,
    ) -> Result<Simulator, SimulatorError> {
        if proxy.kernel_rm && opts.family != Family::Tpm2 {
            return Err(SimulatorError::KernelRmNeedsTpm2);
        }
        Self::start(opts)?.with_proxy(proxy)
    }

    /// Like [`Simulator::start_temporary`], behind a proxy as described by `proxy`.
    pub fn start_temporary_with(proxy: ProxyOptions) -> Result<Simulator, SimulatorError> {
        Self::start_temporary()?.with_proxy(proxy)
    }

    /// Puts a proxy in front of this simulator (replacing any earlier one). A private
    /// simulator keeps the proxy it was started with.
    pub fn with_proxy(mut self, proxy: ProxyOptions) -> Result<Simulator, SimulatorError> {
        if proxy.kernel_rm && self.family != Family::Tpm2 {
            return Err(SimulatorError::KernelRmNeedsTpm2);
        }
        if self.is_private() {
            return Err(SimulatorError::Proxy(proxy::ProxyError::PrivateProxy));
        }
        self.proxy = None;
        self.proxy = Some(Proxy::start(self.port, proxy)?);
        Ok(self)
    }

    /// Starts a provisioned TPM 2.0 simulator in a fresh temporary directory, removed
    /// when the simulator is dropped.
    pub fn start_temporary() -> Result<Simulator, SimulatorError> {
        Self::start_in_tempdir(Family::Tpm2, None, true)
    }

    /// Like [`Simulator::start_temporary`], with a choice of family, port (`None`:
    /// automatic) and provisioning.
    pub fn start_in_tempdir(
        family: Family,
        port: Option<u16>,
        provision_srk: bool,
    ) -> Result<Simulator, SimulatorError> {
        let temp = temp_state_dir()?;
        let opts = SimulatorOptions {
            family,
            state_dir: temp.path().to_path_buf(),
            port,
            provision_srk,
        };
        Self::start_inner(opts, Some(temp))
    }

    /// Starts a simulator that only its user can reach and that cannot outlive this
    /// process, behind a proxy as described by `proxy` (the kernel resource manager
    /// model and a latency profile are allowed, TCP listeners are not):
    ///
    /// - swtpm listens on no TCP port. Its data channel is a socket pair whose other end
    ///   the proxy holds; clients reach the TPM through the proxy's unix socket
    ///   ([`Simulator::transport`]). Its control channel ([`Simulator::control_socket`],
    ///   for `swtpm_ioctl --unix`) and the proxy's socket are mode 0600, in a fresh
    ///   directory of mode 0700 inside the state directory.
    /// - swtpm runs with `--terminate`: when its data channel closes, it exits. The
    ///   kernel closes the channel when this process dies, however it dies.
    /// - A start right after such a death waits (briefly) for the old swtpm to let go
    ///   of the state directory's lock.
    ///
    /// `opts.port` must be `None`.
    pub fn start_private(
        opts: SimulatorOptions,
        proxy: ProxyOptions,
    ) -> Result<Simulator, SimulatorError> {
        if opts.port.is_some() {
            return Err(SimulatorError::PrivatePort);
        }
        if proxy.kernel_rm && opts.family != Family::Tpm2 {
            return Err(SimulatorError::KernelRmNeedsTpm2);
        }
        if proxy.tcp || proxy.mssim {
            return Err(SimulatorError::Proxy(proxy::ProxyError::PrivateTcp));
        }
        let swtpm = find_program("swtpm")?;
        prepare_state_dir(&opts.state_dir)?;
        let log = opts.state_dir.join(process::LOG_FILE);
        if opts.family == Family::Tpm12 {
            setup_tpm12(&opts.state_dir, &log, opts.provision_srk)?;
        }
        let socket_dir = private::socket_dir(&opts.state_dir)?;
        let ctrl = socket_dir.path().join(private::CTRL_SOCKET);
        let lock_deadline = Instant::now() + LOCK_WAIT;
        let (child, channel) = loop {
            match private::launch(&swtpm, opts.family, &opts.state_dir, &ctrl, &log)? {
                private::Launched::Ready { child, channel } => break (child, channel),
                private::Launched::Exited(status) => {
                    Self::wait_for_lock(&opts.state_dir, &log, lock_deadline, || {
                        SimulatorError::Exited {
                            status,
                            log: log.clone(),
                            log_tail: process::log_tail(&log),
                        }
                    })?;
                }
            }
        };
        // swtpm holds the state's lock now: no other simulator uses this state.
        private::remove_stale_socket_dirs(&opts.state_dir, socket_dir.path());
        let mut sim = Simulator {
            pid: child.id(),
            child: Some(child),
            family: opts.family,
            port: 0,
            control: ControlChannel::Unix(ctrl),
            state_dir: opts.state_dir.clone(),
            log,
            srk_created: false,
            proxy: None,
            socket_dir: None,
            _temp: None,
        };
        let upstream = Upstream::pair(channel).map_err(|source| SimulatorError::Spawn {
            program: "swtpm",
            source,
        })?;
        let socket = socket_dir.path().join(private::TPM_SOCKET);
        sim.socket_dir = Some(socket_dir);
        sim.proxy = Some(Proxy::start_private(upstream, socket, proxy)?);
        if opts.family == Family::Tpm2 && opts.provision_srk {
            let mut tpm = Tpm::open(&sim.transport(), None)?;
            sim.srk_created = provision_srk(&mut tpm)?;
        }
        if let Some(proxy) = &sim.proxy {
            // What users measure starts here.
            proxy.reset_counts();
        }
        Ok(sim)
    }

    /// Like [`Simulator::start_private`], in a fresh temporary state directory removed
    /// when the simulator is dropped.
    pub fn start_private_in_tempdir(
        family: Family,
        provision_srk: bool,
        proxy: ProxyOptions,
    ) -> Result<Simulator, SimulatorError> {
        let temp = temp_state_dir()?;
        let opts = SimulatorOptions {
            family,
            state_dir: temp.path().to_path_buf(),
            port: None,
            provision_srk,
        };
        let mut sim = Self::start_private(opts, proxy)?;
        sim._temp = Some(temp);
        Ok(sim)
    }

    /// After swtpm exited during startup: waits a little if another swtpm holds the
    /// state's lock (and `deadline` has not passed), else fails with `exited()`.
    fn wait_for_lock(
        state_dir: &Path,
        log: &Path,
        deadline: Instant,
        exited: impl FnOnce() -> SimulatorError,
    ) -> Result<(), SimulatorError> {
        if !lock_taken(log) {
            return Err(exited());
        }
        if Instant::now() >= deadline {
            return Err(SimulatorError::StateInUse {
                dir: state_dir.to_path_buf(),
                holder: lock_holder(state_dir),
            });
        }
        tracing::debug!(
            "another swtpm holds the lock on {}; waiting",
            state_dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }

    fn start_inner(
        opts: SimulatorOptions,
        temp: Option<tempfile::TempDir>,
    ) -> Result<Simulator, SimulatorError> {
        let swtpm = find_program("swtpm")?;
        prepare_state_dir(&opts.state_dir)?;
        let log = opts.state_dir.join(process::LOG_FILE);
        if opts.family == Family::Tpm12 {
            setup_tpm12(&opts.state_dir, &log, opts.provision_srk)?;
        }
        let lock_deadline = Instant::now() + LOCK_WAIT;
        let mut attempt = 0;
        let (child, port) = loop {
            let port = match opts.port {
                Some(port) => {
                    ports::reserve_pair(port);
                    port
                }
                None => ports::pick_pair(64).ok_or(SimulatorError::NoFreePorts)?,
            };
            match tcp::launch(&swtpm, opts.family, &opts.state_dir, port, &log)? {
                tcp::Launched::Ready(child) => break (child, port),
                tcp::Launched::Exited(err) => {
                    ports::release_pair(port);
                    let port_taken = process::log_tail(&log).contains("Address already in use");
                    if !port_taken {
                        Self::wait_for_lock(&opts.state_dir, &log, lock_deadline, || err)?;
                        continue;
                    }
                    attempt += 1;
                    if opts.port.is_some() || attempt >= PORT_RETRIES {
                        return Err(err);
                    }
                    tracing::debug!("swtpm exited during startup, retrying on other ports: {err}");
                }
            }
        };
        let mut sim = Simulator {
            pid: child.id(),
            child: Some(child),
            family: opts.family,
            port,
            control: ControlChannel::Tcp(port.saturating_add(1)),
            state_dir: opts.state_dir.clone(),
            log,
            srk_created: false,
            proxy: None,
            socket_dir: None,
            _temp: temp,
        };
        if opts.family == Family::Tpm2 && opts.provision_srk {
            // swtpm serves one client at a time: drop the connection before returning.
            let mut tpm = Tpm::open(&sim.swtpm_transport(), None)?;
            sim.srk_created = provision_srk(&mut tpm)?;
        }
        Ok(sim)
    }

    /// Whether this simulator was started with [`Simulator::start_private`].
    pub fn is_private(&self) -> bool {
        matches!(self.control, ControlChannel::Unix(_))
    }

    /// The TPM data port (P); 0 for a private simulator, which has none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The swtpm control port (P+1); 0 for a private simulator (see
    /// [`Simulator::control_socket`]).
    pub fn ctrl_port(&self) -> u16 {
        match self.control {
            ControlChannel::Tcp(port) => port,
            ControlChannel::Unix(_) => 0,
        }
    }

    /// A private simulator's control channel, a unix socket for `swtpm_ioctl --unix`.
    pub fn control_socket(&self) -> Option<&Path> {
        match &self.control {
            ControlChannel::Unix(path) => Some(path),
            ControlChannel::Tcp(_) => None,
        }
    }

    /// A private simulator's socket directory (mode 0700), which holds the proxy's
    /// socket and swtpm's control socket.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.socket_dir.as_ref().map(tempfile::TempDir::path)
    }

    /// How to reach this simulator: swtpm's data port (`swtpm:host=127.0.0.1,port=P`),
    /// or with a proxy its unix socket: `tpmrm:path=...` for the kernel resource manager
    /// model, where a client keeps one connection per space as it would keep
    /// /dev/tpmrm0 open, else `swtpm:path=...`. A private simulator always has a proxy.
    pub fn transport(&self) -> Transport {
        match &self.proxy {
            Some(proxy) if proxy.kernel_rm() => {
                Transport::KernelRmSocket(proxy.socket_path().to_path_buf())
            }
            Some(proxy) => Transport::SwtpmUnix(proxy.socket_path().to_path_buf()),
            None => self.swtpm_transport(),
        }
    }

    /// A TCP address for tss-esapi, whose swtpm TCTI takes a host and port only: the
    /// proxy's TCP port if it has one, else swtpm's. That TCTI connects anew for every
    /// command, so through the kernel model each of its commands is a fresh space; use
    /// [`Proxy::mssim_tcti`] there. A private simulator has no TCP address: this is
    /// then [`Simulator::transport`].
    pub fn tcp_transport(&self) -> Transport {
        match self.proxy.as_ref().and_then(Proxy::tcp_port) {
            Some(port) => Transport::swtpm_tcp(port),
            None => self.swtpm_transport(),
        }
    }

    /// swtpm itself, bypassing any proxy. A private simulator cannot be reached around
    /// its proxy: this is then [`Simulator::transport`].
    pub fn swtpm_transport(&self) -> Transport {
        match (&self.control, &self.proxy) {
            (ControlChannel::Unix(_), Some(proxy)) => {
                Transport::SwtpmUnix(proxy.socket_path().to_path_buf())
            }
            _ => Transport::swtpm_tcp(self.port),
        }
    }

    /// The proxy in front of swtpm, if started with one.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// swtpm's stdout and stderr, appended across restarts.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The swtpm process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this start created the SRK (false if it was already in the state, or
    /// provisioning was not asked for).
    pub fn srk_created(&self) -> bool {
        self.srk_created
    }

    /// `Some(status)` once swtpm has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, SimulatorError> {
        let pid = self.pid;
        match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(|source| SimulatorError::Stop { pid, source }),
            None => Ok(None),
        }
    }

    /// Power-cycles the TPM: `swtpm_ioctl -i` (TPM_Init) on the control channel, then
    /// Startup(CLEAR) on the data channel. Afterwards transient objects, sessions and
    /// saved contexts are gone (ContextLoad fails); persistent objects such as the SRK
    /// and NV stay. No client may hold swtpm's data connection while this runs; the
    /// proxy, if any, holds its clients back meanwhile (and sends Startup itself on a
    /// private simulator's channel, which it never lets go of).
    pub fn reset(&self) -> Result<(), SimulatorError> {
        let startup = startup_command(self.family);
        let rc = match &self.proxy {
            Some(proxy) if self.is_private() => proxy.with_tpm_held(|send| {
                self.init_only()?;
                send(startup)
                    .and_then(|response| control::response_code(&response))
                    .map_err(|source| self.startup_error(source))
            })?,
            Some(proxy) => proxy.with_tpm_released(|| self.tcp_power_cycle(startup))?,
            None => self.tcp_power_cycle(startup)?,
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(SimulatorError::StartupRc(rc))
        }
    }

    fn tcp_power_cycle(&self, startup: &[u8]) -> Result<u32, SimulatorError> {
        self.init_only()?;
        raw_command(self.port, startup).map_err(|source| self.startup_error(source))
    }

    fn startup_error(&self, source: std::io::Error) -> SimulatorError {
        SimulatorError::Startup {
            target: self.transport().to_string(),
            source,
        }
    }

    /// Only the TPM_Init half of [`Simulator::reset`]: the TPM then refuses every
    /// command with TPM_RC_INITIALIZE until a client sends Startup. Useful to test a
    /// daemon that keeps its connection open across a reset.
    pub fn init_only(&self) -> Result<(), SimulatorError> {
        self.control.init()
    }

    /// Stops swtpm (SIGTERM, SIGKILL after a few seconds) and waits for it.
    pub fn stop(mut self) -> Result<(), SimulatorError> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<(), SimulatorError> {
        // The proxy's clients go first, so none of them talks to a dying swtpm. A
        // private swtpm's channel closes with the proxy, which alone ends swtpm.
        self.proxy = None;
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = self.pid;
        let stop_err = |source| SimulatorError::Stop { pid, source };
        let result = (|| {
            if child.try_wait().map_err(stop_err)?.is_some() {
                return Ok(());
            }
            if let Ok(raw) = i32::try_from(pid) {
                // ESRCH means it is already gone, which is what we want.
                let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if child.try_wait().map_err(stop_err)?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            tracing::warn!("swtpm (pid {pid}) ignored SIGTERM; killing it");
            child.kill().map_err(stop_err)?;
            child.wait().map(|_| ()).map_err(stop_err)
        })();
        if !self.is_private() {
            ports::release_pair(self.port);
        }
        result
    }
}

/// A fresh temporary state directory of mode 0700.
fn temp_state_dir() -> Result<tempfile::TempDir, SimulatorError> {
    let temp = tempfile::Builder::new()
        .prefix("tpmd-simulator-")
        .tempdir()
        .map_err(SimulatorError::TempDir)?;
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(SimulatorError::TempDir)?;
    Ok(temp)
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Err(err) = self.terminate() {
            tracing::warn!("{err}");
        }
    }
}
