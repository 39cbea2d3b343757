//! Client side of tpmd, shared by `tpm-keyctl`, `tpmd-ssh-agent` and `libtpmd_pkcs11.so`.
//!
//! Pure Rust: no TPM library, no OpenSSL. Everything a client needs to talk to tpmd and
//! to turn a software private key into a TPM-importable key file lives here, so that a
//! plaintext private key never has to leave the process that read it.

pub mod auth_policy_file;
pub mod backup;
pub mod client;
pub mod crypto;
pub mod dbus;
pub mod duplicate;
#[doc(hidden)]
pub mod fuzzing;
pub mod keyfile;
pub mod marshal;
pub mod policy;
pub mod privkey;
pub mod public;
pub mod recorded_pcrs;

pub use dbus::{Counters, Daemon1Proxy, DaemonError, Info};
pub use keyfile::{KeyFileKind, TpmKeyFile};
pub use privkey::SoftwareKey;
pub use public::TpmPublic;

/// Persistent handle of the storage root key every key defaults to.
pub const DEFAULT_SRK_HANDLE: u32 = 0x8100_0001;
/// Permanent handle of the owner hierarchy: keys whose parent is this are children of
/// the ECC P-256 primary created on the fly from the TCG template (tpm2-openssl convention).
pub const OWNER_HIERARCHY_HANDLE: u32 = 0x4000_0001;
