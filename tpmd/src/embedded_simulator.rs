//! `tpmd --simulator`: an embedded swtpm that only tpmd's user can reach and that
//! cannot outlive tpmd, optionally behind the kernel resource manager model and a
//! latency profile (`--kernel-rm`, `--latency`).
//!
//! The simulator is a private one (`tpmd_simulator::Simulator::start_private`): swtpm
//! listens on no TCP port, its data channel is a socket pair whose other end tpmd's
//! in-process proxy holds, and it runs with `--terminate`, so the kernel ends it when
//! tpmd dies, `kill -9` included. tpmd reaches the TPM through the proxy's unix socket,
//! mode 0600 in a 0700 directory inside the simulator's state directory. A restart
//! right after a crash waits for the old swtpm to release the state's lock.
//!
//! The reverse holds too: if swtpm dies, tpmd cannot serve, so it exits with a logged
//! reason and its service manager starts both again.

use std::os::unix::fs::DirBuilderExt;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tpmd_simulator::latency::LatencyProfile;
use tpmd_simulator::proxy::ProxyOptions;
use tpmd_simulator::{Family, Simulator, SimulatorOptions};
use tpmd_tpm2::transport::Transport;
use tracing::{error, info};

use crate::cli::Args;
use crate::daemon::RunError;

/// How often the watcher asks whether swtpm still runs.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// tpmd's exit status when its simulator died under it (EX_UNAVAILABLE).
const EXIT_SIMULATOR_GONE: i32 = 69;

/// The running simulator; dropping it stops swtpm.
pub struct EmbeddedSimulator {
    // Shared with the watcher, which is joined before this is dropped.
    _sim: Arc<Mutex<Simulator>>,
    stop_watching: Option<mpsc::Sender<()>>,
    watcher: Option<JoinHandle<()>>,
}

fn lock(sim: &Mutex<Simulator>) -> MutexGuard<'_, Simulator> {
    sim.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the simulator `args` asks for; returns how tpmd reaches it.
pub fn start(args: &Args) -> Result<(Transport, EmbeddedSimulator), RunError> {
    let state_dir = args.simulator_state_dir();
    if let Some(parent) = state_dir.parent() {
        // $XDG_STATE_HOME/tpmd may not exist yet on a fresh account.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| RunError::StateDir {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    let latency = args
        .latency
        .as_deref()
        .map(LatencyProfile::load)
        .transpose()?;
    let options = SimulatorOptions {
        family: if args.tpm12 {
            Family::Tpm12
        } else {
            Family::Tpm2
        },
        state_dir,
        port: None,
        provision_srk: true,
    };
    let proxy = ProxyOptions {
        kernel_rm: args.kernel_rm,
        latency,
        ..ProxyOptions::default()
    };
    let sim = Simulator::start_private(options, proxy)?;
    let transport = sim.transport();
    let model = if args.kernel_rm {
        "kernel resource manager (/dev/tpmrm0)"
    } else {
        "raw device (/dev/tpm0)"
    };
    let speed = sim
        .proxy()
        .and_then(|proxy| proxy.latency())
        .map_or("swtpm's own".to_string(), |profile| {
            profile.name().to_string()
        });
    info!(
        state = %sim.state_dir().display(),
        swtpm_pid = sim.pid(),
        control = %sim.control_socket().map(|p| p.display().to_string()).unwrap_or_default(),
        %transport,
        model,
        latency = %speed,
        "embedded TPM simulator started"
    );
    let sim = Arc::new(Mutex::new(sim));
    let (stop_watching, stopped) = mpsc::channel();
    let watched = Arc::clone(&sim);
    let watcher = std::thread::Builder::new()
        .name("simulator-watch".into())
        .spawn(move || watch(&watched, &stopped))
        .map_err(RunError::Runtime)?;
    Ok((
        transport,
        EmbeddedSimulator {
            _sim: sim,
            stop_watching: Some(stop_watching),
            watcher: Some(watcher),
        },
    ))
}

/// Ends tpmd if swtpm exits before tpmd stops it: a tpmd without its TPM cannot serve.
fn watch(sim: &Mutex<Simulator>, stopped: &mpsc::Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(WATCH_INTERVAL) {
        let mut sim = lock(sim);
        let status = match sim.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => continue,
            Err(err) => err.to_string(),
        };
        error!(
            "the embedded TPM simulator (swtpm pid {}) exited: {status}; see {}; tpmd exits so that it can be restarted",
            sim.pid(),
            sim.log_path().display()
        );
        std::process::exit(EXIT_SIMULATOR_GONE);
    }
}

impl Drop for EmbeddedSimulator {
    fn drop(&mut self) {
        // The watcher first, so that stopping swtpm is not taken for a crash.
        drop(self.stop_watching.take());
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        // Then `sim`, the last reference, is dropped, which stops swtpm.
    }
}
