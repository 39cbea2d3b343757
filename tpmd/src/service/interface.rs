//! The `org.tpmd.Daemon1` object: parses and checks each request, identifies the caller,
//! and hands the TPM work to the TPM thread.

use std::sync::Arc;

use tpmd_api::dbus::{ByteBuf, Counters, DecryptOptions, GenerateOptions, Info};
use tpmd_api::{DaemonError, DEFAULT_SRK_HANDLE};
use tracing::info;
use zbus::message::Header;
use zbus::{interface, Connection};
use zeroize::Zeroizing;

use super::caller::CallerCache;
use super::one_at_a_time::OneAtATime;
use crate::backend::{
    Backend, DecryptRequest, KeyBinding, SignRequest, TpmResult, TpmWorker, MAX_RANDOM_BYTES,
};
use crate::budget::{lock_budget, Caller, SharedBudget};

/// One instance serves the bus and every connection on tpmd's socket (clones share all
/// state), so limits and budgets are the same whichever way a call comes.
#[derive(Clone)]
pub struct Daemon {
    tpm: TpmWorker,
    budget: SharedBudget,
    callers: CallerCache,
    generating: Arc<OneAtATime>,
}

impl Daemon {
    pub fn new(tpm: TpmWorker, budget: SharedBudget) -> Daemon {
        Daemon {
            tpm,
            budget,
            callers: CallerCache::default(),
            generating: Arc::new(OneAtATime::new(
                "key generations",
                GENERATIONS_WAITING_PER_UID,
            )),
        }
    }

    /// Runs an operation with a client's key file and its auth value: identifies the
    /// caller and runs it under the dictionary-attack budget.
    async fn with_key<T: Send + 'static>(
        &self,
        caller: (&Connection, &Header<'_>),
        key: Vec<u8>,
        auth: Vec<u8>,
        job: impl FnOnce(&mut dyn Backend, &[u8], &[u8]) -> TpmResult<T> + Send + 'static,
    ) -> Result<T, DaemonError> {
        let uid = self.callers.uid(caller.0, caller.1).await?;
        let auth = Zeroizing::new(auth);
        self.with_auth_limit(uid, key, move |backend, key| job(backend, key, &auth))
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
        if !is_privileged(uid) {
            return Err(DaemonError::InvalidArgument(format!(
                "{what} changes the TPM for everyone: run it as root (you are uid {uid})"
            )));
        }
        Ok(uid)
    }

    /// Runs a key operation that presents an auth value for `key`, in `uid`'s queue (or at
    /// once when nothing else is in flight: a few TPM commands, see
    /// `TpmWorker::run_short`). The budget's check, the TPM command and the accounting
    /// run in one job, so parallel calls cannot overshoot.
    async fn with_auth_limit<T: Send + 'static>(
        &self,
        uid: u32,
        key: Vec<u8>,
        job: impl FnOnce(&mut dyn Backend, &[u8]) -> TpmResult<T> + Send + 'static,
    ) -> Result<T, DaemonError> {
        let budget = self.budget.clone();
        let caller = Caller {
            uid,
            privileged: is_privileged(uid),
        };
        Ok(self
            .tpm
            .run_short(uid, move |backend| {
                lock_budget(&budget).run(caller, backend, &key, |backend| job(backend, &key))
            })
            .await?)
    }

    /// Runs `job` on the TPM thread in the caller's queue.
    async fn run<T: Send + 'static>(
        &self,
        caller: (&Connection, &Header<'_>),
        job: impl FnOnce(&mut dyn Backend) -> TpmResult<T> + Send + 'static,
    ) -> Result<T, DaemonError> {
        let uid = self.callers.uid(caller.0, caller.1).await?;
        Ok(self.tpm.run(uid, job).await?)
    }
}

/// How many Generate calls of one uid may be running or waiting; they run one at a time.
const GENERATIONS_WAITING_PER_UID: usize = 64;

/// Root, or the user tpmd runs as.
fn is_privileged(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::getuid().as_raw()
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
    async fn get_info(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Info, DaemonError> {
        let budget = self.budget.clone();
        self.run((conn, &header), move |backend| {
            let mut info = backend.info()?;
            lock_budget(&budget).fill_info(backend, &mut info);
            Ok(info)
        })
        .await
    }

    async fn get_counters(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Counters, DaemonError> {
        crate::crash::debug_trigger(crate::crash::Place::DbusTask);
        let budget = self.budget.clone();
        self.run((conn, &header), move |backend| {
            let mut counters = backend.counters();
            lock_budget(&budget).fill_counters(&mut counters);
            Ok(counters)
        })
        .await
    }

    async fn parent_public(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        parent: u32,
    ) -> Result<Vec<u8>, DaemonError> {
        self.run((conn, &header), move |backend| {
            backend.parent_public(parent)
        })
        .await
    }

    async fn import(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        key: Vec<u8>,
    ) -> Result<Vec<u8>, DaemonError> {
        let loadable = self
            .run((conn, &header), move |backend| backend.import(&key))
            .await?;
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
        let binding = KeyBinding {
            policy_digest: options.policy_digest,
            pcr_info: options.pcr_info,
        };
        let _turn = self.generating.enter(uid).await?;
        let file = self
            .tpm
            .run(uid, move |backend| {
                backend.generate(&key_type, &auth, parent, &binding)
            })
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
        key: ByteBuf,
        auth: ByteBuf,
        scheme: String,
        hash: String,
        data: ByteBuf,
    ) -> Result<ByteBuf, DaemonError> {
        self.with_key(
            (conn, &header),
            key.into_vec(),
            auth.into_vec(),
            move |backend, key, auth| {
                let request = SignRequest {
                    scheme: &scheme,
                    hash: &hash,
                    data: &data,
                };
                backend.sign(key, auth, &request)
            },
        )
        .await
        .map(ByteBuf::from)
    }

    #[allow(clippy::too_many_arguments)]
    async fn decrypt(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        key: ByteBuf,
        auth: ByteBuf,
        scheme: String,
        hash: String,
        ciphertext: ByteBuf,
    ) -> Result<ByteBuf, DaemonError> {
        let request = OwnedDecrypt {
            scheme,
            hash,
            ciphertext: ciphertext.into_vec(),
            label: Vec::new(),
        };
        self.decrypt_request((conn, &header), key.into_vec(), auth.into_vec(), request)
            .await
            .map(ByteBuf::from)
    }

    /// Decrypt with options: `label`, the OAEP label (a TPM 2.0 takes only labels that end
    /// in a zero byte). Scheme "rsa-raw" returns the bare RSA block.
    #[allow(clippy::too_many_arguments)]
    async fn decrypt_with_options(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        key: ByteBuf,
        auth: ByteBuf,
        scheme: String,
        hash: String,
        ciphertext: ByteBuf,
        options: DecryptOptions,
    ) -> Result<ByteBuf, DaemonError> {
        let request = OwnedDecrypt {
            scheme,
            hash,
            ciphertext: ciphertext.into_vec(),
            label: options.label.unwrap_or_default(),
        };
        self.decrypt_request((conn, &header), key.into_vec(), auth.into_vec(), request)
            .await
            .map(ByteBuf::from)
    }

    /// The values of the PCRs in `selection` ("sha256:0,2,4,7", banks joined by "+"), one
    /// (bank, index, value) per PCR in selection order.
    async fn read_pcrs(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        selection: String,
    ) -> Result<Vec<(String, u32, Vec<u8>)>, DaemonError> {
        let banks =
            tpmd_api::policy::parse_selection(&selection).map_err(DaemonError::InvalidArgument)?;
        self.run((conn, &header), move |backend| backend.read_pcrs(&banks))
            .await
    }

    /// Bytes from the TPM's random number generator, at most 4096 per call.
    async fn get_random(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        count: u32,
    ) -> Result<Vec<u8>, DaemonError> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > MAX_RANDOM_BYTES {
            return Err(DaemonError::InvalidArgument(format!(
                "ask for at most {MAX_RANDOM_BYTES} random bytes per call, not {count}"
            )));
        }
        self.run((conn, &header), move |backend| backend.random(count))
            .await
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
        let created = self.tpm.run(uid, |backend| backend.create_srk()).await?;
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
        self.reset_lockout_with_auth(header, conn, Vec::new()).await
    }

    async fn reset_lockout_with_auth(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        lockout_auth: Vec<u8>,
    ) -> Result<(), DaemonError> {
        let uid = self
            .privileged_caller(conn, &header, "resetting the dictionary-attack lockout")
            .await?;
        let lockout_auth = Zeroizing::new(lockout_auth);
        let budget = self.budget.clone();
        self.tpm
            .run(uid, move |backend| {
                backend.reset_lockout(&lockout_auth)?;
                // The counter is back at zero: let the budget see it at once.
                let _ = lock_budget(&budget).read(backend);
                Ok(())
            })
            .await?;
        info!(uid, "reset the TPM's dictionary-attack lockout");
        Ok(())
    }

    async fn lock_nv(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, DaemonError> {
        let uid = self.privileged_caller(conn, &header, "locking NV").await?;
        let locked = self.tpm.run(uid, |backend| backend.lock_nv()).await?;
        if locked {
            info!(uid, "locked the TPM's NV");
        }
        Ok(locked)
    }
}
