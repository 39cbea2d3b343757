//! The connection to tpmd: a small tokio runtime owned by the module, a lazily made
//! D-Bus proxy (on tpmd's socket when it answers, else on the bus), and the retry that
//! makes a tpmd restart invisible to the application.
//!
//! The runtime is a current-thread one, driven by the application's thread that waits
//! for a call (`block_on`): the reply then wakes the thread that waits for it and no
//! other, where a runtime thread of the module's own would read it and wake the caller,
//! a second thread wake-up per call (on two CPUs, a cross-CPU one). Several application
//! threads may wait at once; one of them drives the runtime for all. A thread inside
//! the application's own tokio runtime, where `block_on` would panic, has its call
//! driven by a short-lived thread instead (unless the application forbade threads).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tpmd_api::client::Scope;
use tpmd_api::dbus::{Daemon1Proxy, DaemonError, ADDRESS_ENV};

/// How long a call waits for tpmd to come back before giving up.
const RESTART_GRACE: Duration = Duration::from_secs(30);

/// Why a call to tpmd failed, after retries.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// tpmd answered with an error.
    Daemon(DaemonError),
    /// tpmd or the bus could not be reached.
    Unreachable(String),
}

pub struct Daemon {
    runtime: Runtime,
    /// Whether the module may start threads: without (the application set
    /// CKF_LIBRARY_CANT_CREATE_OS_THREADS), a call from inside a tokio runtime cannot be
    /// served.
    threaded: bool,
    proxy: Mutex<Option<Daemon1Proxy<'static>>>,
}

/// Whether an error means "tpmd is not there right now" rather than "tpmd said no".
fn is_transient(e: &DaemonError) -> bool {
    match e {
        DaemonError::ZBus(z) => match z {
            zbus::Error::MethodError(name, _, _) => matches!(
                name.as_str(),
                "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner"
                    | "org.freedesktop.DBus.Error.NoReply"
                    | "org.freedesktop.DBus.Error.Disconnected"
                    | "org.freedesktop.DBus.Error.Timeout"
            ),
            zbus::Error::FDO(f) => matches!(
                **f,
                zbus::fdo::Error::ServiceUnknown(_)
                    | zbus::fdo::Error::NameHasNoOwner(_)
                    | zbus::fdo::Error::NoReply(_)
                    | zbus::fdo::Error::Disconnected(_)
                    | zbus::fdo::Error::Timeout(_)
            ),
            // The connection itself broke: reconnect.
            _ => true,
        },
        DaemonError::TpmUnavailable(_) => true,
        _ => false,
    }
}

/// Whether the bus connection must be rebuilt (as opposed to only waiting for tpmd).
fn connection_broken(e: &DaemonError) -> bool {
    matches!(e, DaemonError::ZBus(z) if !matches!(z, zbus::Error::MethodError(..) | zbus::Error::FDO(_)))
}

/// Where the module looks for tpmd: the system tpmd, else a `tpmd --user`.
const SCOPE: Scope = Scope::SystemThenUser;

/// Whether tpmd is there to answer; an error means the connection is of no more use
/// (tpmd's socket closed, the bus went away, or tpmd's socket answers again).
async fn tpmd_present(proxy: &Daemon1Proxy<'static>) -> zbus::Result<bool> {
    tpmd_api::client::tpmd_present(proxy, SCOPE).await
}

/// tpmd's socket if it answers, else its bus (TPMD_SOCKET and TPMD_BUS_ADDRESS override).
async fn connect() -> Result<Daemon1Proxy<'static>, String> {
    tpmd_api::client::connect(SCOPE).await.map_err(|e| {
        if std::env::var_os(ADDRESS_ENV).is_some() {
            format!("cannot reach the bus in {ADDRESS_ENV}: {e}")
        } else {
            format!("cannot reach tpmd: {e}")
        }
    })
}

impl Daemon {
    pub fn new(threaded: bool) -> std::io::Result<Daemon> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Daemon {
            runtime,
            threaded,
            proxy: Mutex::new(None),
        })
    }

    /// Runs `fut` on the module's runtime and waits for it from this thread.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, CallError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(self.runtime.block_on(fut));
        }
        if !self.threaded {
            return Err(CallError::Unreachable(
                "called from inside a tokio runtime, and the application does not let the module start a thread to reach tpmd from".into(),
            ));
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("tpmd-pkcs11".into())
                .spawn_scoped(scope, || self.runtime.block_on(fut))
                .map_err(|e| CallError::Unreachable(format!("cannot start a thread: {e}")))?
                .join()
                .map_err(|_| CallError::Unreachable("the call to tpmd panicked".into()))
        })
    }

    fn proxy(&self) -> Result<Daemon1Proxy<'static>, CallError> {
        let mut guard = self.proxy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = guard.as_ref() {
            return Ok(p.clone());
        }
        let proxy = self.run(connect())?.map_err(CallError::Unreachable)?;
        *guard = Some(proxy.clone());
        Ok(proxy)
    }

    fn forget_proxy(&self) {
        *self.proxy.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Waits until tpmd answers again, or the deadline passes.
    fn wait_for_tpmd(&self, deadline: Instant) {
        while Instant::now() < deadline {
            if let Ok(proxy) = self.proxy() {
                match self.run(async move { tpmd_present(&proxy).await }) {
                    Ok(Ok(true)) => return,
                    Ok(Ok(false)) => {}
                    // The bus went away (dbus-daemon restarted): connect afresh.
                    Ok(Err(_)) | Err(_) => self.forget_proxy(),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Calls tpmd. When tpmd is gone (killed, restarting) or the bus connection broke,
    /// waits for tpmd to come back and repeats the call: every request carries the whole
    /// key blob, so a fresh tpmd can serve it without any state from the old one.
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: Fn(Daemon1Proxy<'static>) -> Fut,
        Fut: Future<Output = Result<T, DaemonError>> + Send + 'static,
    {
        self.call_within(RESTART_GRACE, f)
    }

    /// [`Daemon::call`] with a shorter wait, for calls that only decorate (token label).
    pub fn call_within<T, F, Fut>(&self, grace: Duration, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: Fn(Daemon1Proxy<'static>) -> Fut,
        Fut: Future<Output = Result<T, DaemonError>> + Send + 'static,
    {
        let deadline = Instant::now() + grace;
        loop {
            let result = match self.proxy() {
                Ok(proxy) => self.run(f(proxy))?,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && Instant::now() < deadline => {
                    if connection_broken(&e) {
                        self.forget_proxy();
                    }
                    self.wait_for_tpmd(deadline);
                }
                Err(e) => return Err(CallError::Daemon(e)),
            }
        }
    }

    /// Stops the runtime (C_Finalize): its tasks (the connection's reader) end here,
    /// because an application may unload the library right after.
    pub fn shutdown(self) {
        let Daemon { runtime, proxy, .. } = self;
        {
            let _enter = runtime.enter();
            drop(proxy);
        }
        runtime.shutdown_timeout(Duration::from_secs(2));
    }
}
