//! The `org.tpmd.Daemon1` object: parses and checks each request, identifies the caller,
//! and hands the TPM work to the TPM thread.

use std::sync::Arc;
use std::time::Instant;

use tpmd_api::dbus::{Counters, DecryptOptions, GenerateOptions, Info};
use tpmd_api::{DaemonError, DEFAULT_SRK_HANDLE};
use tracing::{info, warn};
use zbus::message::Header;
use zbus::{interface, Connection};
use zeroize::Zeroizing;

use super::caller::CallerCache;
use super::rate_limit::AuthRateLimiter;
use crate::backend::{
    Backend, DecryptRequest, SignRequest, TpmError, TpmResult, TpmWorker, MAX_RANDOM_BYTES,
};

/// One instance serves the bus and every connection on tpmd's socket (clones share all
/// state), so limits and budgets are the same whichever way a call comes.
#[derive(Clone)]
pub struct Daemon {
    tpm: TpmWorker,
    limiter: Arc<AuthRateLimiter>,
    callers: CallerCache,
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
    /// caller and applies the caller's auth-failure rate limit.
    async fn with_key<T: Send + 'static>(
        &self,
        caller: (&Connection, &Header<'_>),
        key: Vec<u8>,
        auth: Vec<u8>,
        job: impl FnOnce(&mut dyn Backend, &[u8], &[u8]) -> TpmResult<T> + Send + 'static,
    ) -> Result<T, DaemonError> {
        let uid = self.callers.uid(caller.0, caller.1).await?;
        let auth = Zeroizing::new(auth);
        self.with_auth_limit(uid, move |backend| job(backend, &key, &auth))
            .await
    }

    /// The caller's uid, if it may change the TPM for everyone: root, or the user tpmd
    /// runs as (a `tpmd --user` on a simulator).
    async fn privileged_caller(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        what: &str,
    ) -> Result<u32, DaemonError> {
        let uid = self.callers.uid(conn, header).await?;
        let own_uid = nix::unistd::getuid().as_raw();
        if uid != 0 && uid != own_uid {
            return Err(DaemonError::InvalidArgument(format!(
                "{what} changes the TPM for everyone: run it as root (you are uid {uid})"
            )));
        }
        Ok(uid)
    }

    /// Runs a key operation that presents an auth value, under the caller's rate limit.
    async fn with_auth_limit<T: Send + 'static>(
        &self,
        uid: u32,
        job: impl FnOnce(&mut dyn Backend) -> TpmResult<T> + Send + 'static,
    ) -> Result<T, DaemonError> {
        if let Some(wait) = self.limiter.check(uid, Instant::now()) {
            return Err(DaemonError::RateLimited(format!(
                "too many wrong auth values from uid {uid}; try again in {} s",
                wait.as_secs().max(1)
            )));
        }
        let result = self
            .tpm
            .run(move |backend| {
                let result = job(backend);
                match result {
                    Err(TpmError::AuthFailed { .. }) => Err(TpmError::AuthFailed {
                        lockout: backend.lockout_note(),
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

/// A decryption request as it arrived, owned so that it can travel to the TPM thread.
struct OwnedDecrypt {
    scheme: String,
    hash: String,
    ciphertext: Vec<u8>,
    label: Vec<u8>,
}

impl Daemon {
    async fn decrypt_request(
        &self,
        caller: (&Connection, &Header<'_>),
        key: Vec<u8>,
        auth: Vec<u8>,
        request: OwnedDecrypt,
    ) -> Result<Vec<u8>, DaemonError> {
        self.with_key(caller, key, auth, move |backend, key, auth| {
            let request = DecryptRequest {
                scheme: &request.scheme,
                hash: &request.hash,
                ciphertext: &request.ciphertext,
                label: &request.label,
            };
            backend.decrypt(key, auth, &request)
        })
        .await
    }
}

#[interface(name = "org.tpmd.Daemon1")]
impl Daemon {
    async fn get_info(&self) -> Result<Info, DaemonError> {
        Ok(self.tpm.run(|backend| backend.info()).await?)
    }

    async fn get_counters(&self) -> Result<Counters, DaemonError> {
        Ok(self.tpm.run(|backend| Ok(backend.counters())).await?)
    }

    async fn parent_public(&self, parent: u32) -> Result<Vec<u8>, DaemonError> {
        Ok(self
            .tpm
            .run(move |backend| backend.parent_public(parent))
            .await?)
    }

    async fn import(&self, key: Vec<u8>) -> Result<Vec<u8>, DaemonError> {
        let loadable = self.tpm.run(move |backend| backend.import(&key)).await?;
        Ok(loadable.into_bytes())
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
            .run(move |backend| backend.generate(&key_type, &auth, parent))
            .await?;
        info!(uid, "generated a key");
        Ok(file.into_bytes())
    }

    async fn public_key(&self, key: Vec<u8>) -> Result<Vec<u8>, DaemonError> {
        let public = tpmd_api::client::key_file_public(&key)
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
        self.with_key((conn, &header), key, auth, move |backend, key, auth| {
            let request = SignRequest {
                scheme: &scheme,
                hash: &hash,
                data: &data,
            };
            backend.sign(key, auth, &request)
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
        let request = OwnedDecrypt {
            scheme,
            hash,
            ciphertext,
            label: Vec::new(),
        };
        self.decrypt_request((conn, &header), key, auth, request)
            .await
    }

    /// Decrypt with options: `label`, the OAEP label (a TPM 2.0 takes only labels that end
    /// in a zero byte). Scheme "rsa-raw" returns the bare RSA block.
    #[allow(clippy::too_many_arguments)]
    async fn decrypt_with_options(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        key: Vec<u8>,
        auth: Vec<u8>,
        scheme: String,
        hash: String,
        ciphertext: Vec<u8>,
        options: DecryptOptions,
    ) -> Result<Vec<u8>, DaemonError> {
        let request = OwnedDecrypt {
            scheme,
            hash,
            ciphertext,
            label: options.label.unwrap_or_default(),
        };
        self.decrypt_request((conn, &header), key, auth, request)
            .await
    }

    /// Bytes from the TPM's random number generator, at most 4096 per call.
    async fn get_random(&self, count: u32) -> Result<Vec<u8>, DaemonError> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > MAX_RANDOM_BYTES {
            return Err(DaemonError::InvalidArgument(format!(
                "ask for at most {MAX_RANDOM_BYTES} random bytes per call, not {count}"
            )));
        }
        Ok(self.tpm.run(move |backend| backend.random(count)).await?)
    }

    /// The key file with a new auth value: the old one is checked by the TPM (and counts
    /// like any other auth value presented), the new one travels encrypted.
    async fn change_auth(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        key: Vec<u8>,
        old_auth: Vec<u8>,
        new_auth: Vec<u8>,
    ) -> Result<Vec<u8>, DaemonError> {
        let new_auth = Zeroizing::new(new_auth);
        let file = self
            .with_key((conn, &header), key, old_auth, move |backend, key, old| {
                backend.change_auth(key, old, &new_auth)
            })
            .await?;
        Ok(file.into_bytes())
    }

    async fn create_srk(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, DaemonError> {
        let uid = self
            .privileged_caller(conn, &header, "creating the SRK")
            .await?;
        let created = self.tpm.run(|backend| backend.create_srk()).await?;
        if created {
            info!(uid, "created the storage root key");
        }
        Ok(created)
    }

    async fn reset_lockout(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), DaemonError> {
        let uid = self
            .privileged_caller(conn, &header, "resetting the dictionary-attack lockout")
            .await?;
        self.tpm.run(|backend| backend.reset_lockout()).await?;
        info!(uid, "reset the TPM's dictionary-attack lockout");
        Ok(())
    }

    async fn lock_nv(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, DaemonError> {
        let uid = self.privileged_caller(conn, &header, "locking NV").await?;
        let locked = self.tpm.run(|backend| backend.lock_nv()).await?;
        if locked {
            info!(uid, "locked the TPM's NV");
        }
        Ok(locked)
    }
}
