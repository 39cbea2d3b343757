//! The `org.tpmd.Daemon1` D-Bus API: names, argument types, errors and the client proxy.
//!
//! Key arguments are always the bytes of a key file (PEM or DER of a TSS2 PRIVATE KEY),
//! exactly as read from disk; tpmd parses them. Documented in `docs/dbus-api.md`.

pub use serde_bytes::{ByteBuf, Bytes};
use zbus::{DBusError, DeserializeDict, SerializeDict, Type};

pub const BUS_NAME: &str = "org.tpmd.Daemon1";
pub const OBJECT_PATH: &str = "/org/tpmd/Daemon1";
pub const INTERFACE: &str = "org.tpmd.Daemon1";
/// Environment variable naming a D-Bus address to use instead of the system bus.
pub const ADDRESS_ENV: &str = "TPMD_BUS_ADDRESS";

/// Signature schemes accepted by `Sign`.
pub mod scheme {
    /// RSASSA-PKCS1-v1_5 over a digest of the given hash.
    pub const RSA_PKCS1: &str = "rsa-pkcs1";
    /// RSASSA-PSS with salt length equal to the digest length.
    pub const RSA_PSS: &str = "rsa-pss";
    /// ECDSA; the signature is returned as r || s, each padded to the curve size.
    pub const ECDSA: &str = "ecdsa";
    /// RSA PKCS#1 v1.5 type 1 padding over caller-supplied data (a DigestInfo, or the
    /// MD5+SHA1 concatenation of TLS 1.0): what PKCS#11 CKM_RSA_PKCS needs.
    pub const RSA_PKCS1_RAW: &str = "rsa-pkcs1-raw";
    /// RSA-OAEP decryption with the given hash (label empty, or given in the options of
    /// `DecryptWithOptions`).
    pub const RSA_OAEP: &str = "rsa-oaep";
    /// RSAES-PKCS1-v1_5 decryption.
    pub const RSA_PKCS1_DECRYPT: &str = "rsa-pkcs1";
    /// The bare RSA private operation: the modulus-sized block, padding left in place for
    /// the caller to remove (OAEP with a label the TPM cannot take). Only keys whose public
    /// area leaves the scheme NULL allow it.
    pub const RSA_RAW: &str = "rsa-raw";
}

/// What `GetInfo` returns. A dictionary, so fields can be added without a new interface.
#[derive(Debug, Default, Clone, SerializeDict, DeserializeDict, Type, PartialEq)]
#[zbus(signature = "a{sv}", rename_all = "kebab-case")]
pub struct Info {
    /// "2.0" or "1.2".
    pub family: Option<String>,
    pub manufacturer: Option<String>,
    pub vendor_string: Option<String>,
    pub firmware_version: Option<String>,
    /// Algorithms the TPM reports, e.g. "rsa", "ecc", "sha256".
    pub algorithms: Option<Vec<String>>,
    /// Key types `Generate` accepts on this TPM, e.g. "rsa2048", "ecc-p256".
    pub key_types: Option<Vec<String>>,
    /// Whether a storage root key exists at the default handle.
    pub srk_present: Option<bool>,
    pub srk_handle: Option<u32>,
    /// Whether the TPM is in dictionary-attack lockout, as the TPM reports it.
    pub lockout: Option<bool>,
    /// The TPM's dictionary-attack counter (TPM 2.0 failedTries, TPM 1.2 currentCount):
    /// wrong auth values and unorderly resets it has not forgotten yet. tpmd's estimate
    /// from a reading made for this call.
    pub da_failed_tries: Option<u32>,
    /// The count at which the TPM locks out (maxTries; TPM 1.2 thresholdCount).
    pub da_max_tries: Option<u32>,
    /// Seconds after which the TPM forgets one failure (recoveryTime; TPM 2.0 only).
    pub da_recovery_time: Option<u32>,
    /// Seconds before the lockout auth may be tried again after a wrong one
    /// (lockoutRecovery; TPM 2.0 only).
    pub da_lockout_recovery: Option<u32>,
    /// In lockout: tpmd's estimate of the seconds until the TPM lets auth values through
    /// again, at most (a TPM 2.0 reports no time remaining; this counts from recoveryTime).
    pub lockout_ends_in: Option<u64>,
    /// tpmd's estimate of the seconds until the counter is back to zero, at most.
    pub da_healed_in: Option<u64>,
    /// TPM 1.2 only: whether ownership has been taken (the SRK exists only then).
    pub owned: Option<bool>,
    /// TPM 1.2 only: whether NV is locked (TPM_NV_INDEX_LOCK defined). An unlocked NV
    /// lets anyone write NV without authorization and wear it out.
    pub nv_locked: Option<bool>,
    pub transport: Option<String>,
    /// How the resource manager keeps keys ready on this transport, in words.
    pub resource_manager: Option<String>,
    pub counters: Option<Counters>,
}

/// Resource manager counters, since tpmd started.
#[derive(Debug, Default, Clone, SerializeDict, DeserializeDict, Type, PartialEq, Eq)]
#[zbus(signature = "a{sv}", rename_all = "kebab-case")]
pub struct Counters {
    pub requests: Option<u64>,
    /// Key found loaded in the TPM.
    pub hits: Option<u64>,
    /// Key loaded from its blob (TPM2_Load, or Import then Load).
    pub loads: Option<u64>,
    /// Key brought back from a saved context.
    pub context_loads: Option<u64>,
    pub evictions: Option<u64>,
    /// TPM_RC_RETRY / YIELDED / TESTING retried.
    pub retries: Option<u64>,
    /// Saved contexts found invalid (TPM reset), recovered from the blob.
    pub resets_recovered: Option<u64>,
    pub failures: Option<u64>,
    /// Keys currently in the cache, and how many of them are loaded in the TPM.
    pub cached_keys: Option<u64>,
    pub loaded_keys: Option<u64>,
    /// Every command tpmd sent to the TPM, by name ("Sign", "Load"...; a hex code for
    /// others). On /dev/tpmrm0 the kernel adds its own context swaps to these.
    pub tpm_commands: Option<std::collections::HashMap<String, u64>>,
    /// Wrong auth values the TPM counted against its dictionary-attack counter.
    pub auth_failures: Option<u64>,
    /// Key uses tpmd's dictionary-attack budget refused without asking the TPM.
    pub auth_refused: Option<u64>,
    /// Times the TPM answered TPM_RC_LOCKOUT to tpmd (zero unless something outside
    /// tpmd's budget filled the counter).
    pub lockout_answers: Option<u64>,
}

/// Options for `Generate`.
#[derive(Debug, Default, Clone, SerializeDict, DeserializeDict, Type, PartialEq, Eq)]
#[zbus(signature = "a{sv}", rename_all = "kebab-case")]
pub struct GenerateOptions {
    /// Parent handle; defaults to 0x81000001.
    pub parent: Option<u32>,
    /// The new key's authPolicy (TPM 2.0): the digest its policy session must reach
    /// (`tpmd_api::policy::policy_digest`), as many bytes as the name algorithm's (SHA-256)
    /// digest. The key is made without userWithAuth, so that only the policy can authorize
    /// it (a policy with PolicyAuthValue asks for the auth value too). The client writes
    /// the policy statements into the key file tpmd returns.
    pub policy_digest: Option<Vec<u8>>,
    /// TPM 1.2: the TPM_PCR_INFO_LONG the new key is bound to (digestAtRelease of sha1
    /// PCR values; `tpmd_api::client::tpm12::pcr_binding`).
    pub pcr_info: Option<Vec<u8>>,
}

/// Options for `DecryptWithOptions`.
#[derive(Debug, Default, Clone, SerializeDict, DeserializeDict, Type, PartialEq, Eq)]
#[zbus(signature = "a{sv}", rename_all = "kebab-case")]
pub struct DecryptOptions {
    /// The OAEP label. A TPM 2.0 takes only labels whose last byte is zero.
    pub label: Option<Vec<u8>>,
}

/// Errors tpmd sends over D-Bus. The message is one readable line that says what to do.
#[derive(DBusError, Debug, Clone, PartialEq)]
#[zbus(prefix = "org.tpmd.Daemon1.Error")]
pub enum DaemonError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The request itself is malformed (bad scheme name, wrong digest size, ...).
    InvalidArgument(String),
    /// The key file cannot be parsed or is not a TPM key.
    BadKeyFile(String),
    /// The key type or operation is not supported by this TPM or this key.
    Unsupported(String),
    /// No storage root key at the parent handle.
    NoSrk(String),
    /// The key was wrapped for another TPM or another SRK.
    WrongTpm(String),
    /// Wrong key auth value.
    AuthFailed(String),
    /// The TPM is in dictionary-attack lockout.
    Lockout(String),
    /// Too many failed auth attempts from this caller (or near the TPM's limit); the
    /// message says how many seconds to wait.
    RateLimited(String),
    /// The caller has as many requests queued as tpmd allows one user; retry when some
    /// have finished.
    Busy(String),
    /// No TPM, or it is not answering.
    TpmUnavailable(String),
    /// Any other TPM error, with its response code explained.
    Tpm(String),
    /// The key's policy is not satisfied: its PCRs no longer hold the values it is bound
    /// to, or no signed policy for it matches. The message names the PCR selection (and
    /// the PCRs that changed, when the key file recorded their values) and what to do.
    /// Never counts against the TPM's dictionary-attack counter.
    PolicyFailed(String),
}

impl DaemonError {
    /// The human-readable line, without the D-Bus error name.
    pub fn message(&self) -> String {
        match self {
            DaemonError::ZBus(e) => e.to_string(),
            DaemonError::InvalidArgument(m)
            | DaemonError::BadKeyFile(m)
            | DaemonError::Unsupported(m)
            | DaemonError::NoSrk(m)
            | DaemonError::WrongTpm(m)
            | DaemonError::AuthFailed(m)
            | DaemonError::Lockout(m)
            | DaemonError::RateLimited(m)
            | DaemonError::Busy(m)
            | DaemonError::TpmUnavailable(m)
            | DaemonError::Tpm(m)
            | DaemonError::PolicyFailed(m) => m.clone(),
        }
    }
}

/// The client proxy. `auth` arguments are the key's auth value (empty for none).
///
/// The calls made once per signature or decryption take and return their bytes as
/// [`Bytes`] / [`ByteBuf`]: the same `ay` on the wire, copied as one slice, where `&[u8]`
/// and `Vec<u8>` go through serde one byte at a time (measured: 20 against 3 µs to build
/// and read a call with a 600-byte key file).
#[zbus::proxy(
    interface = "org.tpmd.Daemon1",
    default_service = "org.tpmd.Daemon1",
    default_path = "/org/tpmd/Daemon1"
)]
pub trait Daemon1 {
    /// TPM family, vendor, algorithms, SRK state and resource manager counters.
    fn get_info(&self) -> Result<Info, DaemonError>;

    /// Resource manager counters only.
    fn get_counters(&self) -> Result<Counters, DaemonError>;

    /// The parent's public area as TPM2B_PUBLIC bytes (the format `tpm2_readpublic -o`
    /// writes), which a client needs to build a duplicate for it.
    fn parent_public(&self, parent: u32) -> Result<Vec<u8>, DaemonError>;

    /// Imports an importable key file (a duplicate) and returns the loadable key file (PEM).
    fn import(&self, key: &[u8]) -> Result<Vec<u8>, DaemonError>;

    /// Makes a new key inside the TPM. `key_type` is one of `Info.key_types`. Returns the
    /// loadable key file (PEM).
    fn generate(
        &self,
        key_type: &str,
        auth: &[u8],
        options: GenerateOptions,
    ) -> Result<Vec<u8>, DaemonError>;

    /// The key's public key as DER SubjectPublicKeyInfo.
    fn public_key(&self, key: &[u8]) -> Result<Vec<u8>, DaemonError>;

    /// Signs. `scheme` is one of [`scheme`]; `hash` is "sha1", "sha256", "sha384" or
    /// "sha512" (ignored for rsa-pkcs1-raw); `data` is the digest (or, for rsa-pkcs1-raw,
    /// the bytes to pad and sign).
    fn sign(
        &self,
        key: &Bytes,
        auth: &Bytes,
        scheme: &str,
        hash: &str,
        data: &Bytes,
    ) -> Result<ByteBuf, DaemonError>;

    /// Decrypts with scheme "rsa-oaep" (with `hash`) or "rsa-pkcs1".
    fn decrypt(
        &self,
        key: &Bytes,
        auth: &Bytes,
        scheme: &str,
        hash: &str,
        ciphertext: &Bytes,
    ) -> Result<ByteBuf, DaemonError>;

    /// The key file with `new_auth` as its auth value instead of `old_auth`
    /// (TPM2_ObjectChangeAuth); the original file is unchanged. Changes between an empty
    /// and a non-empty auth value are refused (they would change the key's protection
    /// against guessing).
    fn change_auth(
        &self,
        key: &[u8],
        old_auth: &[u8],
        new_auth: &[u8],
    ) -> Result<Vec<u8>, DaemonError>;

    /// `Decrypt` with options (`label`: the OAEP label); scheme "rsa-raw" also works here.
    #[allow(clippy::too_many_arguments)]
    fn decrypt_with_options(
        &self,
        key: &Bytes,
        auth: &Bytes,
        scheme: &str,
        hash: &str,
        ciphertext: &Bytes,
        options: DecryptOptions,
    ) -> Result<ByteBuf, DaemonError>;

    /// The values of the PCRs in `selection` ("sha256:0,2,4,7", banks joined by "+"):
    /// one (bank, PCR index, value) per PCR, in selection order. A TPM 1.2 has only the
    /// "sha1" bank.
    fn read_pcrs(&self, selection: &str) -> Result<Vec<(String, u32, Vec<u8>)>, DaemonError>;

    /// `count` bytes from the TPM's random number generator (at most 4096 per call).
    fn get_random(&self, count: u32) -> Result<Vec<u8>, DaemonError>;

    /// Creates the storage root key at 0x81000001 from the TCG RSA-2048 template if it is
    /// absent. Needs the owner hierarchy (empty owner auth) and a privileged caller.
    fn create_srk(&self) -> Result<bool, DaemonError>;

    /// Clears the TPM's dictionary-attack lockout (TPM 2.0: with an empty lockout auth;
    /// TPM 1.2: with the well-known owner secret). Needs a privileged caller.
    fn reset_lockout(&self) -> Result<(), DaemonError>;

    /// Clears the TPM's dictionary-attack lockout with the lockout hierarchy's auth value
    /// (TPM 2.0). Needs a privileged caller.
    fn reset_lockout_with_auth(&self, lockout_auth: &[u8]) -> Result<(), DaemonError>;

    /// Locks NV on a TPM 1.2 (defines TPM_NV_INDEX_LOCK) so that NV writes need
    /// authorization; false if it was locked already. Needs a privileged caller.
    fn lock_nv(&self) -> Result<bool, DaemonError>;
}

/// Connects to tpmd: its socket when it answers, else the address in `TPMD_BUS_ADDRESS`
/// if set, else the system bus, or the session bus when `user` is true. See
/// [`crate::client::connection`].
pub async fn connect(user: bool) -> zbus::Result<Daemon1Proxy<'static>> {
    crate::client::connection::connect(crate::client::connection::Scope::user(user)).await
}
