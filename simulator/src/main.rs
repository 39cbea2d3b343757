//! `tpmd-simulator`: runs a swtpm TPM simulator in the foreground until SIGINT or
//! SIGTERM, optionally behind a proxy that models the kernel resource manager and a
//! real TPM's latency, and prints where to reach it.

mod cli;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;

use clap::Parser;
use cli::Args;
use nix::sys::signal::{SigSet, Signal};
use tpmd_simulator::latency::{LatencyError, LatencyProfile};
use tpmd_simulator::proxy::ProxyOptions;
use tpmd_simulator::{Family, Simulator, SimulatorError, SimulatorOptions};

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error(transparent)]
    Simulator(#[from] SimulatorError),
    #[error(transparent)]
    Latency(#[from] LatencyError),
    #[error("cannot wait for signals: {0}")]
    Signals(#[from] nix::Error),
    #[error("swtpm exited unexpectedly ({0}); see its log in the state directory")]
    SwtpmDied(std::process::ExitStatus),
}

fn run(args: Args) -> Result<(), MainError> {
    let family = if args.tpm12 {
        Family::Tpm12
    } else {
        Family::Tpm2
    };
    // Block the signals before starting swtpm so none is lost; swtpm itself starts
    // with an empty signal mask (std resets it in the child).
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGCHLD);
    signals.thread_block()?;

    let latency = args
        .latency
        .as_deref()
        .map(LatencyProfile::load)
        .transpose()?;
    if args.kernel_rm && family != Family::Tpm2 {
        return Err(SimulatorError::KernelRmNeedsTpm2.into());
    }
    let provision = !args.no_provision;
    let mut sim = if args.private {
        let proxy = ProxyOptions {
            kernel_rm: args.kernel_rm,
            latency,
            ..ProxyOptions::default()
        };
        match args.state_dir {
            Some(dir) => Simulator::start_private(
                SimulatorOptions {
                    family,
                    state_dir: dir,
                    port: None,
                    provision_srk: provision,
                },
                proxy,
            )?,
            None => Simulator::start_private_in_tempdir(family, provision, proxy)?,
        }
    } else {
        let sim = match args.state_dir {
            Some(dir) => Simulator::start(SimulatorOptions {
                family,
                state_dir: dir,
                port: args.port,
                provision_srk: provision,
            })?,
            None => Simulator::start_in_tempdir(family, args.port, provision)?,
        };
        if args.kernel_rm || latency.is_some() {
            sim.with_proxy(ProxyOptions {
                kernel_rm: args.kernel_rm,
                latency,
                tcp: true,
                mssim: true,
                capture: false,
            })?
        } else {
            sim
        }
    };
    let mut stdout = std::io::stdout();
    // If stdout is closed nobody learns the port, but the simulator still works.
    let _ = writeln!(stdout, "TPMD_TRANSPORT={}", sim.transport());
    if let Some(proxy) = sim.proxy().filter(|_| !sim.is_private()) {
        if let Some(tcti) = proxy.mssim_tcti() {
            let _ = writeln!(stdout, "TPMD_MSSIM_TCTI={tcti}");
        }
        let _ = writeln!(stdout, "TPMD_TCP_TRANSPORT={}", sim.tcp_transport());
    }
    let _ = stdout.flush();
    if let Some(proxy) = sim.proxy() {
        let model = if proxy.kernel_rm() {
            "the kernel resource manager (each connection is one /dev/tpmrm0 space)"
        } else {
            "a raw device (/dev/tpm0)"
        };
        let speed = proxy
            .latency()
            .map_or("swtpm's own speed".to_string(), |p| {
                format!("latency profile {}", p.name())
            });
        eprintln!(
            "tpmd-simulator: proxy in front of swtpm models {model}, at {speed}; unix socket {}",
            proxy.socket_path().display()
        );
        if proxy.kernel_rm() && !sim.is_private() {
            eprintln!("tpmd-simulator: the swtpm TCTI (TPMD_TCP_TRANSPORT) connects once per command, so through the kernel model every command is a new space; keep a connection with TPMD_TRANSPORT or TPMD_MSSIM_TCTI");
        }
    }
    let channels = match sim.control_socket() {
        Some(ctrl) => format!("private, control socket {}", ctrl.display()),
        None => format!("on port {} (control {})", sim.port(), sim.ctrl_port()),
    };
    eprintln!(
        "tpmd-simulator: {} {channels}, state in {}, pid {}",
        sim.family(),
        sim.state_dir().display(),
        sim.pid()
    );

    while let Signal::SIGCHLD = signals.wait()? {
        if let Some(status) = sim.try_wait()? {
            // A Ctrl-C in a terminal reaches swtpm too and ends it.
            let interrupted = matches!(status.signal(), Some(s) if s == Signal::SIGINT as i32 || s == Signal::SIGTERM as i32);
            return if status.success() || interrupted {
                Ok(())
            } else {
                Err(MainError::SwtpmDied(status))
            };
        }
    }
    sim.stop()?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tpmd-simulator: {err}");
            ExitCode::FAILURE
        }
    }
}
