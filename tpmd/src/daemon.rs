//! Start-up and shutdown: choose the TPM, start the TPM thread, listen on tpmd's socket,
//! claim the bus name, tell systemd we are ready, and on SIGTERM flush every loaded key
//! before exiting.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::signal::unix::{signal, SignalKind};
use tpmd_api::dbus::{BUS_NAME, OBJECT_PATH};
use tpmd_tpm2::transport::Transport;
use tracing::{info, warn};

use crate::backend::{self, OpenOptions, TpmError, TpmWorker};
use crate::budget::records::UidRecords;
use crate::budget::{lock_budget, DaBudget, SharedBudget};
use crate::cli::Args;
use crate::service::socket::{Admission, ClaimedPath, SocketError, SocketOptions};
use crate::service::Daemon;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Tpm(#[from] TpmError),
    #[error("{0}")]
    Transport(#[from] tpmd_tpm2::transport::ParseError),
    #[error("{0}")]
    NoTpm(#[from] tpmd_tpm2::transport::NoTpm),
    #[cfg(feature = "simulator")]
    #[error("{0}")]
    Simulator(#[from] tpmd_simulator::SimulatorError),
    #[cfg(feature = "simulator")]
    #[error("{0}")]
    Latency(#[from] tpmd_simulator::latency::LatencyError),
    #[cfg(not(feature = "simulator"))]
    #[error("this tpmd was built without the embedded simulator")]
    NoSimulator,
    #[error("cannot serve on D-Bus ({bus}): {source}; {hint}")]
    Bus {
        bus: String,
        hint: &'static str,
        #[source]
        source: zbus::Error,
    },
    #[error("{0}")]
    Socket(#[from] SocketError),
    #[error("cannot create the simulator's state directory {path}: {source}")]
    StateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Records(#[from] crate::budget::records::RecordsError),
    #[error("cannot read the SRK auth file {path}: {source}")]
    SecretFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A secret from a file, without the newline an editor or `echo` leaves at its end.
fn read_secret(path: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, RunError> {
    let mut bytes =
        zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| RunError::SecretFile {
            path: path.to_path_buf(),
            source,
        })?);
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

/// Whatever must stay alive as long as tpmd runs: the embedded simulator, if any.
type TpmGuard = Option<Box<dyn std::any::Any>>;

fn choose_tpm(args: &Args) -> Result<(Transport, TpmGuard), RunError> {
    if args.simulator {
        #[cfg(feature = "simulator")]
        {
            let (transport, sim) = crate::embedded_simulator::start(args)?;
            return Ok((transport, Some(Box::new(sim))));
        }
        #[cfg(not(feature = "simulator"))]
        return Err(RunError::NoSimulator);
    }
    let transport = match &args.tpm {
        Some(spec) => spec.parse()?,
        None => Transport::detect()?,
    };
    Ok((transport, None))
}

pub fn run(args: Args) -> Result<(), RunError> {
    let started = Instant::now();
    let socket = claim_socket(&args)?;
    let (transport, guard) = choose_tpm(&args)?;
    info!(%transport, "opening the TPM");
    let options = OpenOptions {
        family: args.family(),
        max_loaded: args.max_loaded_keys,
        reserve: args.reserve_slots,
        srk_auth: args.srk_auth_file.as_deref().map(read_secret).transpose()?,
        policy_dir: Some(args.policy_dir.clone()),
    };
    let records = match UidRecords::open(&args.state_dir()) {
        Ok(records) => records,
        Err(e) if args.state_dir.is_some() => return Err(e.into()),
        // A default that cannot be made (a system account whose home is /, say) should
        // not keep tpmd from serving; the TPM's own counter still bounds every try.
        Err(e) => {
            warn!("{e}; keeping the dictionary-attack records in memory only, so a restart forgets them");
            UidRecords::in_memory()
        }
    };
    let budget = Arc::new(Mutex::new(DaBudget::new(records)));
    let start_budget = budget.clone();
    let worker = TpmWorker::start(
        move || {
            let mut backend = backend::open(transport, options)?;
            // The DA state at start; a TPM that cannot say is read again before each try.
            let _ = lock_budget(&start_budget).read(backend.as_mut());
            Ok(backend)
        },
        args.queue_per_user as usize,
    )?;
    // D-Bus handling is light and the TPM has its own thread; one async thread saves
    // the cross-thread wake-ups that would otherwise add to every request's latency.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let result = runtime.block_on(serve(&args, worker, budget, socket, started));
    drop(guard);
    result
}

/// Claims tpmd's socket path. A default location that cannot be used is not worth
/// failing for (clients fall back to the bus); a path given explicitly is.
fn claim_socket(args: &Args) -> Result<Option<ClaimedPath>, RunError> {
    let Some((path, is_default)) = args.socket_path() else {
        if args.user && args.socket.is_none() {
            info!("XDG_RUNTIME_DIR is not set: no socket, serving on the session bus only");
        }
        return Ok(None);
    };
    let admission = if args.user {
        Admission::OwnUserAndRoot
    } else {
        Admission::Everyone
    };
    let options = SocketOptions {
        path,
        admission,
        // /run/tpmd is world-readable like the system bus's directory; a user's is private.
        create_dir: is_default.then_some(if args.user { 0o700 } else { 0o755 }),
    };
    match ClaimedPath::claim(&options) {
        Ok(claimed) => Ok(Some(claimed)),
        Err(e) if is_default => {
            warn!("{e}; serving on the bus only (--socket none silences this)");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn serve(
    args: &Args,
    worker: TpmWorker,
    budget: SharedBudget,
    socket: Option<ClaimedPath>,
    started: Instant,
) -> Result<(), RunError> {
    let daemon = Daemon::new(worker.clone(), budget);
    // The socket first: a client that sees tpmd on the bus finds the socket ready too.
    let socket = socket.map(ClaimedPath::listen).transpose()?;
    let socket_path = socket
        .as_ref()
        .map(|s| s.path().display().to_string())
        .unwrap_or_else(|| "none".into());
    let socket_task = socket.map(|server| tokio::spawn(server.serve(daemon.clone())));
    let (builder, bus, hint) = if let Some(address) = &args.address {
        (
            zbus::connection::Builder::address(address.as_str()),
            address.clone(),
            "check the address",
        )
    } else if args.user {
        (
            zbus::connection::Builder::session(),
            "session bus".to_string(),
            "is a session bus running (DBUS_SESSION_BUS_ADDRESS)? is another tpmd --user running?",
        )
    } else {
        (
            zbus::connection::Builder::system(),
            "system bus".to_string(),
            "is the D-Bus policy file installed (systemd/org.tpmd.Daemon1.conf)? is another tpmd running?",
        )
    };
    let bus_error = |source| RunError::Bus {
        bus: bus.clone(),
        hint,
        source,
    };
    let connection = builder
        .name(BUS_NAME)
        .serve_at(OBJECT_PATH, daemon)
        .build()
        .await
        .map_err(bus_error)?;
    info!(
        bus = %bus,
        socket = %socket_path,
        millis = started.elapsed().as_millis() as u64,
        "tpmd ready as {BUS_NAME}"
    );
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        warn!("cannot notify systemd: {e}");
    }
    wait_for_stop().await;
    info!("stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    drop(connection);
    if let Some(task) = socket_task {
        // Ends every socket connection, removes the socket file and releases its lock.
        task.abort();
        let _ = task.await;
    }
    let _ = worker
        .run(nix::unistd::getuid().as_raw(), |rm| {
            rm.flush_all();
            Ok(())
        })
        .await;
    Ok(())
}

async fn wait_for_stop() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop tpmd with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
