//! `tpmd-simulator`: runs a swtpm TPM simulator in the foreground until SIGINT or
//! SIGTERM, and prints where to reach it.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use tpmd_simulator::{Family, Simulator, SimulatorError, SimulatorOptions};

/// Run a swtpm TPM simulator for tpmd on 127.0.0.1.
///
/// Once ready, prints `TPMD_TRANSPORT=swtpm:host=127.0.0.1,port=P` on stdout; stops
/// swtpm on SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "tpmd-simulator", version)]
struct Args {
    /// Directory for the TPM state (kept across runs). Default: a temporary directory
    /// removed on exit.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Data port P; the control channel uses P+1. Default: a free pair.
    #[arg(long, value_name = "P")]
    port: Option<u16>,
    /// Emulate a TPM 1.2 (well-known owner and SRK secrets) instead of a TPM 2.0.
    #[arg(long)]
    tpm12: bool,
    /// Do not create the SRK at 0x81000001 (TPM 2.0) or take ownership (TPM 1.2).
    #[arg(long)]
    no_provision: bool,
}

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error(transparent)]
    Simulator(#[from] SimulatorError),
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

    let mut sim = match args.state_dir {
        Some(dir) => Simulator::start(SimulatorOptions {
            family,
            state_dir: dir,
            port: args.port,
            provision_srk: !args.no_provision,
        })?,
        None => Simulator::start_in_tempdir(family, args.port, !args.no_provision)?,
    };
    let mut stdout = std::io::stdout();
    // If stdout is closed nobody learns the port, but the simulator still works.
    let _ = writeln!(stdout, "TPMD_TRANSPORT={}", sim.transport());
    let _ = stdout.flush();
    eprintln!(
        "tpmd-simulator: {} on port {} (control {}), state in {}, pid {}",
        sim.family(),
        sim.port(),
        sim.ctrl_port(),
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
