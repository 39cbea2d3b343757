//! The TPM behind tpmd, whatever its family. [`Backend`] is the one boundary the D-Bus
//! service sees; `tpm2` and `tpm12` each implement it over their own stack and resource
//! manager, and [`worker::TpmWorker`] runs every request on the one thread that owns it.

pub mod cache;
pub mod counters;
pub mod da_state;
pub mod error;
pub mod family;
pub mod tpm12;
pub mod tpm2;
pub mod worker;

use tpmd_api::dbus::{Counters, Info};
use tpmd_api::policy::PcrBank;
use zeroize::Zeroizing;

pub use da_state::DaState;
pub use error::{TpmError, TpmResult};
pub use family::Family;
pub use worker::TpmWorker;

/// A signing request. `scheme` is one of `tpmd_api::dbus::scheme`; `hash` names the digest
/// algorithm of `data` (ignored for rsa-pkcs1-raw, where `data` is what to pad and sign).
pub struct SignRequest<'a> {
    pub scheme: &'a str,
    pub hash: &'a str,
    pub data: &'a [u8],
}

/// A decryption request: scheme "rsa-oaep" (with `hash` and `label`), "rsa-pkcs1" or
/// "rsa-raw" (the bare RSA private operation, for padding the caller removes itself).
pub struct DecryptRequest<'a> {
    pub scheme: &'a str,
    pub hash: &'a str,
    pub ciphertext: &'a [u8],
    /// The OAEP label; empty for none.
    pub label: &'a [u8],
}

/// One PCR as `ReadPcrs` answers it: bank name ("sha256"), index, value.
pub type PcrValue = (String, u32, Vec<u8>);

/// The most random bytes one request returns: a bigger ask would hold the TPM for
/// everyone else; clients ask again.
pub const MAX_RANDOM_BYTES: usize = 4096;

/// What a new key is bound to besides its auth value: each family's own form.
#[derive(Debug, Default, Clone)]
pub struct KeyBinding {
    /// TPM 2.0: the authPolicy its policy session must reach.
    pub policy_digest: Option<Vec<u8>>,
    /// TPM 1.2: the TPM_PCR_INFO_LONG naming the PCR values it may be used under.
    pub pcr_info: Option<Vec<u8>>,
}

/// What tpmd needs from a TPM. Key arguments are the bytes of a key file exactly as the
/// client sent them; the backend parses the formats its family uses and answers
/// [`TpmError::BadKeyFile`] for others. Operations a family cannot do answer
/// [`TpmError::Unsupported`] with a line that names the family.
pub trait Backend: Send {
    fn family(&self) -> Family;
    /// Vendor, firmware, algorithms, SRK state, counters.
    fn info(&mut self) -> TpmResult<Info>;
    fn counters(&self) -> Counters;
    fn count_request(&mut self);
    fn count_failure(&mut self);
    /// The parent's public key as TPM2B_PUBLIC bytes, which a client needs to wrap a key
    /// for it. (A TPM 1.2 SRK is presented as an RSA storage key's public area.)
    fn parent_public(&mut self, parent: u32) -> TpmResult<Vec<u8>>;
    /// Turns an importable key file into a loadable one (PEM text).
    fn import(&mut self, key: &[u8]) -> TpmResult<String>;
    /// Makes a new key of `key_type` (one of `Info.key_types`) under `parent`, bound as
    /// `binding` says; PEM text.
    fn generate(
        &mut self,
        key_type: &str,
        auth: &[u8],
        parent: u32,
        binding: &KeyBinding,
    ) -> TpmResult<String>;
    /// The values of the PCRs in `selection`, one per PCR in selection order.
    fn read_pcrs(&mut self, selection: &[PcrBank]) -> TpmResult<Vec<PcrValue>>;
    fn sign(&mut self, key: &[u8], auth: &[u8], request: &SignRequest<'_>) -> TpmResult<Vec<u8>>;
    fn decrypt(
        &mut self,
        key: &[u8],
        auth: &[u8],
        request: &DecryptRequest<'_>,
    ) -> TpmResult<Vec<u8>>;
    /// `count` bytes from the TPM's random number generator (at most
    /// [`MAX_RANDOM_BYTES`]).
    fn random(&mut self, count: usize) -> TpmResult<Vec<u8>>;
    /// The key file with `new_auth` as its auth value instead of `old_auth` (PEM text).
    fn change_auth(&mut self, key: &[u8], old_auth: &[u8], new_auth: &[u8]) -> TpmResult<String>;
    /// Creates the storage root key if absent (takes ownership on a 1.2); true if created.
    fn create_srk(&mut self) -> TpmResult<bool>;
    /// Clears the dictionary-attack lockout with `lockout_auth`: the lockout hierarchy's
    /// auth value on a TPM 2.0 (empty if none was set); on a TPM 1.2 only the well-known
    /// owner secret (empty) is supported.
    fn reset_lockout(&mut self, lockout_auth: &[u8]) -> TpmResult<()>;
    /// The TPM's dictionary-attack parameters and counter, as it reports them. One TPM
    /// command: the budget calls it at start, after a reset, after a failure and near its
    /// limit, never per signature.
    fn da_state(&mut self) -> TpmResult<DaState>;
    /// Whether a wrong auth value for this key counts against the TPM's dictionary-attack
    /// counter: a TPM 2.0 key without noDA; a TPM 1.2 key that has an auth value at all.
    /// Reads only the key file, no TPM command (the TPM checks the public part on load,
    /// so a client cannot pretend a key has noDA); fails with `BadKeyFile` if it cannot
    /// be parsed.
    fn key_counts_auth_failures(&mut self, key: &[u8]) -> TpmResult<bool>;
    /// Locks NV so that writing it needs authorization (TPM 1.2: defines
    /// TPM_NV_INDEX_LOCK); false if it already was.
    fn lock_nv(&mut self) -> TpmResult<bool>;
    /// Flushes every loaded object, before exit.
    fn flush_all(&mut self);
    /// Called by the TPM thread once no job has come for a while: lets go of what only
    /// speeds up a burst and keeps other programs out (a held swtpm connection).
    fn idle(&mut self) {}
}

/// How to open the TPM.
#[derive(Default)]
pub struct OpenOptions {
    /// The family; detected when `None`.
    pub family: Option<Family>,
    /// How many keys may be loaded at once; `None` for the transport's default (on a
    /// TPM 2.0 we own, what its free slots allow; on /dev/tpmrm0, connections).
    pub max_loaded: Option<usize>,
    /// TPM 2.0 we own (/dev/tpm0): transient slots left free for the machine's other
    /// TPM users; `None` for the default.
    pub reserve: Option<usize>,
    /// The SRK's auth value (a password), when it is not a well-known secret. Only a TPM
    /// 1.2 SRK can have one: the TCG template's TPM 2.0 SRK has none.
    pub srk_auth: Option<Zeroizing<Vec<u8>>>,
    /// Where signed policies for keys with a PolicyAuthorize policy are found (TPM 2.0);
    /// `None`: nowhere but in the key bytes.
    pub policy_dir: Option<std::path::PathBuf>,
}

/// Opens the TPM at `transport`.
pub fn open(
    transport: tpmd_tpm2::transport::Transport,
    options: OpenOptions,
) -> TpmResult<Box<dyn Backend>> {
    let family = match options.family {
        Some(family) => family,
        None => Family::detect(&transport),
    };
    match family {
        Family::Tpm2 if options.srk_auth.is_some() => Err(TpmError::InvalidArgument(format!(
            "{transport} is a TPM 2.0, whose SRK has no auth value; drop the SRK auth option"
        ))),
        Family::Tpm2 => {
            let strategy =
                tpm2::Strategy::for_transport(&transport, options.max_loaded, options.reserve);
            let mut backend = tpm2::Tpm2Backend::open(transport, strategy)?;
            backend.set_policy_dir(options.policy_dir);
            Ok(Box::new(backend))
        }
        Family::Tpm12 => tpm12::open(
            transport,
            options.max_loaded.unwrap_or(tpm12::DEFAULT_BUDGET),
            options.srk_auth.as_ref().map(|a| a.as_slice()),
        ),
    }
}
