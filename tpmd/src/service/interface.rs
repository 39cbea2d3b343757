//! The `org.tpmd.Daemon1` object: parses and checks each request, identifies the caller,
//! and hands the TPM work to the TPM thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tpmd_api::dbus::{Counters, GenerateOptions, Info};
use tpmd_api::{DaemonError, DEFAULT_SRK_HANDLE};
use tracing::{info, warn};
use zbus::message::Header;
use zbus::{interface, Connection};
use zeroize::Zeroizing;

use super::rate_limit::AuthRateLimiter;
use crate::tpm::blob::KeyBlob;
use crate::tpm::ops::{self, SignRequest};
use crate::tpm::{info as tpm_info, ResourceManager, TpmError, TpmResult, TpmWorker};
use tpmd_api::TpmKeyFile;

pub struct Daemon {
    tpm: TpmWorker,
    limiter: Arc<AuthRateLimiter>,
    callers: CallerCache,
}

/// Unique bus names are never reused while the bus runs, so a caller's uid is asked of
/// the bus once per connection rather than once per call.
#[derive(Default)]
struct CallerCache {
    uids: Mutex<HashMap<String, u32>>,
    bus: tokio::sync::OnceCell<zbus::fdo::DBusProxy<'static>>,
}

const MAX_REMEMBERED_CALLERS: usize = 4096;

impl CallerCache {
    /// Who is calling, from the bus's own account of the sender.
    async fn uid(&self, conn: &Connection, header: &Header<'_>) -> Result<u32, DaemonError> {
        let sender = header
            .sender()
            .ok_or_else(|| DaemonError::InvalidArgument("message without a sender".into()))?;
        if let Some(uid) = self
            .uids
            .lock()
            .ok()
            .and_then(|m| m.get(sender.as_str()).copied())
        {
            return Ok(uid);
        }
        let bus = self
            .bus
            .get_or_try_init(|| async {
                zbus::fdo::DBusProxy::builder(conn)
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await
            })
            .await?;
        let uid = bus
            .get_connection_unix_user(sender.clone().into())
            .await
            .map_err(|e| {
                DaemonError::InvalidArgument(format!("cannot identify the caller: {e}"))
            })?;
        if let Ok(mut uids) = self.uids.lock() {
            if uids.len() >= MAX_REMEMBERED_CALLERS {
                uids.clear();
            }
            uids.insert(sender.to_string(), uid);
        }
        Ok(uid)
    }
}

impl Daemon {
    pub fn new(tpm: TpmWorker) -> Daemon {
        Daemon {
            tpm,
            limiter: Arc::new(AuthRateLimiter::default()),
            callers: CallerCache::default(),
        }
    }

    /// Runs an operation with a client's key file and its auth value: identifies the
    /// caller, parses the key, and applies the caller's auth-failure rate limit.
    async fn with_key<T: Send + 'static>(
        &self,
        caller: (&Connection, &Header<'_>),
        key: &[u8],
        auth: Vec<u8>,
        job: impl FnOnce(&mut ResourceManager, &TpmKeyFile, &KeyBlob, &[u8]) -> TpmResult<T>
            + Send
            + 'static,
    ) -> Result<T, DaemonError> {
        let uid = self.callers.uid(caller.0, caller.1).await?;
        let (file, blob) = KeyBlob::parse(key)?;
        let auth = Zeroizing::new(auth);
        self.with_auth_limit(uid, move |rm| job(rm, &file, &blob, &auth))
            .await
    }

    /// Runs a key operation that presents an auth value, under the caller's rate limit.
    async fn with_auth_limit<T: Send + 'static>(
        &self,
        uid: u32,
        job: impl FnOnce(&mut ResourceManager) -> TpmResult<T> + Send + 'static,
    ) -> Result<T, DaemonError> {
        if let Some(wait) = self.limiter.check(uid, Instant::now()) {
            return Err(DaemonError::RateLimited(format!(
                "too many wrong auth values from uid {uid}; try again in {} s",
                wait.as_secs().max(1)
            )));
        }
        let result = self
            .tpm
            .run(move |rm| {
                let result = job(rm);
                match result {
                    Err(TpmError::AuthFailed { .. }) => Err(TpmError::AuthFailed {
                        lockout: tpm_info::lockout_note(rm),
                    }),
                    other => other,
                }
            })
            .await;
        match &result {
            Err(TpmError::AuthFailed { .. }) => {
                warn!(uid, "wrong key auth value");
                self.limiter.failed(uid, Instant::now());
            }
            Ok(_) => self.limiter.succeeded(uid),
            Err(_) => {}
        }
        Ok(result?)
    }
}

fn pem(file: &tpmd_api::TpmKeyFile) -> Vec<u8> {
    file.to_pem().into_bytes()
}

#[interface(name = "org.tpmd.Daemon1")]
impl Daemon {
    async fn get_info(&self) -> Result<Info, DaemonError> {
        Ok(self.tpm.run(tpm_info::info).await?)
    }

    async fn get_counters(&self) -> Result<Counters, DaemonError> {
        Ok(self.tpm.run(|rm| Ok(rm.counters())).await?)
    }

    async fn parent_public(&self, parent: u32) -> Result<Vec<u8>, DaemonError> {
        Ok(self
            .tpm
            .run(move |rm| ops::parent_public(rm, parent))
            .await?)
    }

    async fn import(&self, key: Vec<u8>) -> Result<Vec<u8>, DaemonError> {
        let (file, blob) = KeyBlob::parse(&key)?;
        let loadable = self
            .tpm
            .run(move |rm| ops::import(rm, &file, &blob))
            .await?;
        Ok(pem(&loadable))
    }

    async fn generate(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        key_type: String,
        auth: Vec<u8>,
        options: GenerateOptions,
    ) -> Result<Vec<u8>, DaemonError> {
        let uid = self.callers.uid(conn, &header).await?;
        let auth = Zeroizing::new(auth);
        let parent = options.parent.unwrap_or(DEFAULT_SRK_HANDLE);
        let file = self
            .tpm
            .run(move |rm| ops::generate(rm, &key_type, &auth, parent))
            .await?;
        info!(uid, "generated a key");
        Ok(pem(&file))
    }

    async fn public_key(&self, key: Vec<u8>) -> Result<Vec<u8>, DaemonError> {
        let (file, _) = KeyBlob::parse(&key)?;
        let public = file
            .public_area()
            .map_err(|e| DaemonError::BadKeyFile(e.to_string()))?;
        public
            .to_spki_der()
            .map_err(|e| DaemonError::Unsupported(e.to_string()))
    }

    // The D-Bus signature fixes the arguments.
    #[allow(clippy::too_many_arguments)]
    async fn sign(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        key: Vec<u8>,
        auth: Vec<u8>,
        scheme: String,
        hash: String,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, DaemonError> {
        self.with_key((conn, &header), &key, auth, move |rm, file, blob, auth| {
            let req = SignRequest {
                scheme: &scheme,
                hash: &hash,
                data: &data,
            };
            ops::sign(rm, file, blob, auth, &req)
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn decrypt(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        key: Vec<u8>,
        auth: Vec<u8>,
        scheme: String,
        hash: String,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, DaemonError> {
        self.with_key((conn, &header), &key, auth, move |rm, file, blob, auth| {
            ops::decrypt(rm, file, blob, auth, &scheme, &hash, &ciphertext)
        })
        .await
    }

    async fn create_srk(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, DaemonError> {
        let uid = self.callers.uid(conn, &header).await?;
        let own_uid = nix::unistd::getuid().as_raw();
        if uid != 0 && uid != own_uid {
            return Err(DaemonError::InvalidArgument(format!(
                "creating the SRK changes the TPM for everyone: run it as root (you are uid {uid})"
            )));
        }
        let created = self.tpm.run(crate::tpm::ops::create_srk).await?;
        if created {
            info!(uid, "created the storage root key at 0x81000001");
        }
        Ok(created)
    }
}
