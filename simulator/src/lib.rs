//! A swtpm TPM simulator on loopback TCP, for tpmd's tests and `tpmd --simulator`.
//!
//! [`Simulator::start`] runs `swtpm socket` as a child process with its state in a
//! directory, waits until it listens, and (for TPM 2.0) provisions the SRK at
//! 0x81000001. swtpm serves one client at a time, so the harness never keeps a
//! connection open: tests and the daemon connect through [`Simulator::transport`].
//! Dropping the [`Simulator`] stops swtpm (SIGTERM, then SIGKILL).
//!
//! [`Simulator::start_with`] puts a [`proxy::Proxy`] in front of swtpm that behaves like
//! a real machine's TPM: the kernel resource manager of `/dev/tpmrm0`
//! ([`kernel_rm`]), the latency of a real chip ([`latency`]), or both;
//! [`Simulator::transport`] then leads to the proxy.
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

pub mod kernel_rm;
pub mod latency;
mod ports;
pub mod proxy;

use std::ffi::OsStr;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tpmd_tpm2::srk::{provision_srk, SrkError};
use tpmd_tpm2::tpm::Tpm;
use tpmd_tpm2::transport::Transport;

use crate::proxy::{Proxy, ProxyError, ProxyOptions};

/// How long swtpm may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long swtpm gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a TPM command sent by the harness may take (Startup after a reset).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How many port pairs auto-selection tries when another process takes one first.
const PORT_RETRIES: u32 = 5;
const LOG_FILE: &str = "swtpm.log";
const LOG_MARKER: &str = "--- tpmd-simulator:";

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
    #[error("swtpm did not listen on 127.0.0.1:{port} within {} s; see {log}: {log_tail}", START_TIMEOUT.as_secs())]
    StartTimeout {
        port: u16,
        log: PathBuf,
        log_tail: String,
    },
    #[error("cannot connect to the simulator: {0}")]
    Connect(#[from] tpmd_tpm2::transport::TransportError),
    #[error("cannot provision the simulator's SRK: {0}")]
    Srk(#[from] SrkError),
    #[error("swtpm_ioctl -i on control port {port} failed ({status}): {output}; is the simulator still running?")]
    Init {
        port: u16,
        status: ExitStatus,
        output: String,
    },
    #[error("cannot send Startup to the simulator on port {port}: {source}; swtpm serves one client at a time, so disconnect other clients before reset()")]
    Startup {
        port: u16,
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

/// A running swtpm. Dropping it stops swtpm; a temporary state directory is removed
/// afterwards.
#[derive(Debug)]
pub struct Simulator {
    child: Option<Child>,
    pid: u32,
    family: Family,
    port: u16,
    state_dir: PathBuf,
    log: PathBuf,
    srk_created: bool,
    proxy: Option<Proxy>,
    // Declared last so it is dropped after swtpm has been stopped in `Drop::drop`.
    temp: Option<tempfile::TempDir>,
}

/// Finds `program` on PATH.
fn find_program(program: &'static str) -> Result<PathBuf, SimulatorError> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| {
            path.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or(SimulatorError::MissingProgram(program))
}

fn prepare_state_dir(dir: &Path) -> Result<(), SimulatorError> {
    match dir.metadata() {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(SimulatorError::StateDirNotDirectory(dir.to_path_buf())),
        Err(_) => {}
    }
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("/"),
    };
    if !parent.is_dir() {
        return Err(SimulatorError::StateDirParentMissing(dir.to_path_buf()));
    }
    DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|source| SimulatorError::StateDir {
            path: dir.to_path_buf(),
            source,
        })
}

fn open_log(path: &Path) -> Result<File, SimulatorError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| SimulatorError::Log {
            path: path.to_path_buf(),
            source,
        })
}

/// The last few lines the log got since the most recent start marker, on one line.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let since_start = text
        .rfind(LOG_MARKER)
        .and_then(|at| text[at..].split_once('\n'))
        .map_or(text.as_str(), |(_, rest)| rest);
    let lines: Vec<&str> = since_start
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(log is empty)".to_string()
    } else {
        tail
    }
}

fn log_command(
    log: &Path,
    program: &Path,
    args: &[&OsStr],
) -> Result<(Stdio, Stdio), SimulatorError> {
    let mut file = open_log(log)?;
    let line = std::iter::once(program.as_os_str())
        .chain(args.iter().copied())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    // Best effort: a failed marker write only makes error messages less precise.
    let _ = writeln!(file, "{LOG_MARKER} {line}");
    let err = file.try_clone().map_err(|source| SimulatorError::Log {
        path: log.to_path_buf(),
        source,
    })?;
    Ok((Stdio::from(file), Stdio::from(err)))
}

/// Creates TPM 1.2 state with a well-known owner and SRK if `dir` has none yet.
/// Creates a TPM 1.2's state: endorsement key always; owner and SRK with the well-known
/// secrets when `take_ownership` (otherwise the TPM is left unowned, as shipped).
fn setup_tpm12(dir: &Path, log: &Path, take_ownership: bool) -> Result<(), SimulatorError> {
    if dir.join("tpm-00.permall").exists() {
        return Ok(());
    }
    let program = find_program("swtpm_setup")?;
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--tpmstate"),
        dir.as_os_str(),
        OsStr::new("--createek"),
    ];
    if take_ownership {
        args.extend([
            OsStr::new("--take-ownership"),
            OsStr::new("--owner-well-known"),
            OsStr::new("--srk-well-known"),
        ]);
    }
    args.push(OsStr::new("--not-overwrite"));
    let (stdout, stderr) = log_command(log, &program, &args)?;
    let status = Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|source| SimulatorError::Spawn {
            program: "swtpm_setup",
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(SimulatorError::Setup {
            dir: dir.to_path_buf(),
            status,
            log_tail: log_tail(log),
        })
    }
}

/// Sends a command to the TPM on the data port and returns the response code.
fn raw_command(port: u16, command: &[u8]) -> io::Result<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT)?;
    stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
    stream.write_all(command)?;
    // Header: tag (2), size (4), response code (4).
    let mut header = [0u8; 10];
    stream.read_exact(&mut header)?;
    Ok(u32::from_be_bytes([
        header[6], header[7], header[8], header[9],
    ]))
}

enum Launch {
    Ready(Simulator),
    /// swtpm exited before listening: with auto-selected ports, most likely because
    /// another process took a port between selection and bind.
    Exited(SimulatorError),
}

impl Simulator {
    /// Starts swtpm as described by `opts` and waits until it listens.
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

    /// Puts a proxy in front of this simulator (replacing any earlier one).
    pub fn with_proxy(mut self, proxy: ProxyOptions) -> Result<Simulator, SimulatorError> {
        if proxy.kernel_rm && self.family != Family::Tpm2 {
            return Err(SimulatorError::KernelRmNeedsTpm2);
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
        let temp = tempfile::Builder::new()
            .prefix("tpmd-simulator-")
            .tempdir()
            .map_err(SimulatorError::TempDir)?;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(SimulatorError::TempDir)?;
        let opts = SimulatorOptions {
            family,
            state_dir: temp.path().to_path_buf(),
            port,
            provision_srk,
        };
        Self::start_inner(opts, Some(temp))
    }

    fn start_inner(
        opts: SimulatorOptions,
        temp: Option<tempfile::TempDir>,
    ) -> Result<Simulator, SimulatorError> {
        let swtpm = find_program("swtpm")?;
        prepare_state_dir(&opts.state_dir)?;
        let log = opts.state_dir.join(LOG_FILE);
        if opts.family == Family::Tpm12 {
            setup_tpm12(&opts.state_dir, &log, opts.provision_srk)?;
        }
        let mut temp = temp;
        let mut attempt = 0;
        let mut sim = loop {
            attempt += 1;
            let port = match opts.port {
                Some(port) => {
                    ports::reserve_pair(port);
                    port
                }
                None => ports::pick_pair(64).ok_or(SimulatorError::NoFreePorts)?,
            };
            match Self::launch(&swtpm, &opts, port, &log)? {
                Launch::Ready(mut sim) => {
                    sim.temp = temp.take();
                    break sim;
                }
                Launch::Exited(err) => {
                    ports::release_pair(port);
                    let port_taken = log_tail(&log).contains("Address already in use");
                    if opts.port.is_some() || !port_taken || attempt >= PORT_RETRIES {
                        return Err(err);
                    }
                    tracing::debug!("swtpm exited during startup, retrying on other ports: {err}");
                }
            }
        };
        if opts.family == Family::Tpm2 && opts.provision_srk {
            // swtpm serves one client at a time: drop the connection before returning.
            let mut tpm = Tpm::open(&sim.swtpm_transport(), None)?;
            sim.srk_created = provision_srk(&mut tpm)?;
        }
        Ok(sim)
    }

    fn launch(
        swtpm: &Path,
        opts: &SimulatorOptions,
        port: u16,
        log: &Path,
    ) -> Result<Launch, SimulatorError> {
        let ctrl_port = port.checked_add(1).ok_or(SimulatorError::NoFreePorts)?;
        let server = format!("type=tcp,port={port}");
        let ctrl = format!("type=tcp,port={ctrl_port}");
        let mut state = std::ffi::OsString::from("dir=");
        state.push(&opts.state_dir);
        let mut args: Vec<&OsStr> = vec![OsStr::new("socket")];
        if opts.family == Family::Tpm2 {
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
        let child = Command::new(swtpm)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| SimulatorError::Spawn {
                program: "swtpm",
                source,
            })?;
        let mut sim = Simulator {
            pid: child.id(),
            child: Some(child),
            family: opts.family,
            port,
            state_dir: opts.state_dir.clone(),
            log: log.to_path_buf(),
            srk_created: false,
            proxy: None,
            temp: None,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = sim.try_wait()? {
                return Ok(Launch::Exited(SimulatorError::Exited {
                    status,
                    log: log.to_path_buf(),
                    log_tail: log_tail(log),
                }));
            }
            if sim.listening() {
                return Ok(Launch::Ready(sim));
            }
            if Instant::now() >= deadline {
                // `sim` is dropped here, which stops swtpm.
                return Err(SimulatorError::StartTimeout {
                    port,
                    log: log.to_path_buf(),
                    log_tail: log_tail(log),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether our swtpm (not some other process) listens on both ports and accepts.
    fn listening(&self) -> bool {
        let ours = [self.port, self.ctrl_port()]
            .iter()
            .map(|&p| ports::listened_by(self.pid, p))
            .all(|owned| owned != Some(false));
        ours && TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            Duration::from_millis(200),
        )
        .is_ok()
    }

    /// The TPM data port (P).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The swtpm control port (P+1).
    pub fn ctrl_port(&self) -> u16 {
        self.port.saturating_add(1)
    }

    /// How to reach this simulator: swtpm's data port (`swtpm:host=127.0.0.1,port=P`),
    /// or with a proxy its unix socket: `tpmrm:path=...` for the kernel resource manager
    /// model, where a client keeps one connection per space as it would keep
    /// /dev/tpmrm0 open, else `swtpm:path=...`.
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
    /// [`Proxy::mssim_tcti`] there.
    pub fn tcp_transport(&self) -> Transport {
        match self.proxy.as_ref().and_then(Proxy::tcp_port) {
            Some(port) => Transport::swtpm_tcp(port),
            None => self.swtpm_transport(),
        }
    }

    /// swtpm itself, bypassing any proxy.
    pub fn swtpm_transport(&self) -> Transport {
        Transport::swtpm_tcp(self.port)
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
    /// Startup(CLEAR) on the data port. Afterwards transient objects, sessions and
    /// saved contexts are gone (ContextLoad fails); persistent objects such as the SRK
    /// and NV stay. No client may hold the data connection while this runs; the proxy,
    /// if any, lets go of it and holds its clients back meanwhile.
    pub fn reset(&self) -> Result<(), SimulatorError> {
        match &self.proxy {
            Some(proxy) => proxy.with_tpm_released(|| self.power_cycle()),
            None => self.power_cycle(),
        }
    }

    fn power_cycle(&self) -> Result<(), SimulatorError> {
        self.init_only()?;
        let startup: &[u8] = match self.family {
            // TPM2_Startup(TPM_SU_CLEAR): TPM_ST_NO_SESSIONS, size 12, TPM_CC_Startup.
            Family::Tpm2 => &[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0],
            // TPM_Startup(TPM_ST_CLEAR): TPM_TAG_RQU_COMMAND, size 12, TPM_ORD_Startup.
            Family::Tpm12 => &[0x00, 0xc1, 0, 0, 0, 12, 0, 0, 0, 0x99, 0, 1],
        };
        let rc = raw_command(self.port, startup).map_err(|source| SimulatorError::Startup {
            port: self.port,
            source,
        })?;
        if rc == 0 {
            Ok(())
        } else {
            Err(SimulatorError::StartupRc(rc))
        }
    }

    /// Only the TPM_Init half of [`Simulator::reset`]: the TPM then refuses every
    /// command with TPM_RC_INITIALIZE until a client sends Startup. Useful to test a
    /// daemon that keeps its connection open across a reset.
    pub fn init_only(&self) -> Result<(), SimulatorError> {
        let program = find_program("swtpm_ioctl")?;
        let target = format!("127.0.0.1:{}", self.ctrl_port());
        let output = Command::new(program)
            .args(["--tcp", &target, "-i"])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| SimulatorError::Spawn {
                program: "swtpm_ioctl",
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stdout));
            Err(SimulatorError::Init {
                port: self.ctrl_port(),
                status: output.status,
                output: text.split_whitespace().collect::<Vec<_>>().join(" "),
            })
        }
    }

    /// Stops swtpm (SIGTERM, SIGKILL after a few seconds) and waits for it.
    pub fn stop(mut self) -> Result<(), SimulatorError> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<(), SimulatorError> {
        // The proxy's clients go first, so none of them talks to a dying swtpm.
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
        ports::release_pair(self.port);
        result
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Err(err) = self.terminate() {
            tracing::warn!("{err}");
        }
    }
}
