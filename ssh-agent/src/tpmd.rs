//! The connection to tpmd: its socket when it answers, else the bus. A zbus connection
//! to the bus outlives a tpmd restart, but calls fail while tpmd is away (ServiceUnknown
//! / NameHasNoOwner) and a call in flight fails when it dies (NoReply); a connection to
//! tpmd's socket ends with tpmd. Such failures are retried once, after waiting a bounded
//! time for tpmd to answer again; a lost connection is rebuilt.

use std::future::Future;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::Mutex;
use tpmd_api::{Daemon1Proxy, DaemonError};
use tracing::{info, warn};

#[derive(Debug, Error)]
pub enum TpmdError {
    #[error("tpmd is not reachable ({0}); start tpmd (systemctl start tpmd) and retry")]
    Unreachable(String),
    #[error("wrong auth value (PIN) for this TPM key: {0}")]
    AuthFailed(String),
    #[error("tpmd refused: {0}")]
    Refused(String),
    #[error("not supported by this TPM: {0}")]
    Unsupported(String),
}

fn classify(error: DaemonError) -> TpmdError {
    match error {
        DaemonError::ZBus(e) => TpmdError::Unreachable(e.to_string()),
        DaemonError::AuthFailed(m) => TpmdError::AuthFailed(m),
        DaemonError::Unsupported(m) => TpmdError::Unsupported(m),
        other => TpmdError::Refused(other.message()),
    }
}

pub struct Tpmd {
    proxy: Mutex<Option<Daemon1Proxy<'static>>>,
    wait: Duration,
    session_bus: bool,
}

impl Tpmd {
    /// `wait`: how long a failed call waits for tpmd to come back before its retry.
    /// `session_bus`: tpmd runs on the session bus; `TPMD_BUS_ADDRESS` overrides both.
    pub fn new(wait: Duration, session_bus: bool) -> Tpmd {
        Tpmd {
            proxy: Mutex::new(None),
            wait,
            session_bus,
        }
    }

    async fn proxy(&self) -> Result<Daemon1Proxy<'static>, TpmdError> {
        let mut slot = self.proxy.lock().await;
        if let Some(proxy) = slot.as_ref() {
            return Ok(proxy.clone());
        }
        let proxy = tpmd_api::dbus::connect(self.session_bus)
            .await
            .map_err(|e| TpmdError::Unreachable(format!("cannot connect to tpmd: {e}")))?;
        *slot = Some(proxy.clone());
        Ok(proxy)
    }

    async fn forget_connection(&self) {
        *self.proxy.lock().await = None;
    }

    /// Polls until tpmd answers again, for at most `self.wait`. A connection that is of
    /// no more use (tpmd's socket closed, or its socket answers again while we are on
    /// the bus) is replaced, so the agent goes back to the socket after a restart.
    async fn wait_for_tpmd(&self) {
        let deadline = Instant::now() + self.wait;
        let scope = tpmd_api::client::Scope::user(self.session_bus);
        while Instant::now() < deadline {
            if let Ok(proxy) = self.proxy().await {
                match tpmd_api::client::tpmd_present(&proxy, scope).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(_) => self.forget_connection().await,
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `op` against tpmd; a transport failure is retried once after tpmd returns.
    pub async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, TpmdError>
    where
        F: Fn(Daemon1Proxy<'static>) -> Fut,
        Fut: Future<Output = Result<T, DaemonError>>,
    {
        let first = match self.proxy().await {
            Ok(proxy) => op(proxy).await,
            Err(e) => Err(DaemonError::ZBus(zbus::Error::Failure(e.to_string()))),
        };
        let error = match first {
            Ok(value) => return Ok(value),
            Err(DaemonError::ZBus(e)) => e,
            Err(other) => return Err(classify(other)),
        };
        warn!("{what}: tpmd call failed ({error}); waiting for tpmd and retrying once");
        if !matches!(error, zbus::Error::MethodError(..)) {
            self.forget_connection().await;
        }
        self.wait_for_tpmd().await;
        let proxy = self.proxy().await?;
        let result = op(proxy).await.map_err(classify);
        if result.is_ok() {
            info!("{what}: succeeded on retry");
        }
        result
    }

    /// One GetInfo, without the retry: "TPM 2.0 (IBM), SRK present".
    pub async fn probe(&self) -> Result<String, TpmdError> {
        let proxy = self.proxy().await?;
        let info = proxy.get_info().await.map_err(classify)?;
        Ok(format!(
            "TPM {} ({}), {}",
            info.family.as_deref().unwrap_or("?"),
            info.manufacturer.as_deref().unwrap_or("unknown maker"),
            match info.srk_present {
                Some(true) => "storage root key present",
                Some(false) => "no storage root key: run `tpm-keyctl srk create`",
                None => "storage root key state unknown",
            }
        ))
    }
}
