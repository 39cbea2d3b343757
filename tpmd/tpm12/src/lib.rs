//! Our own TPM 1.2 stack.
//!
//! - [`codec`]: pure marshalling of TPM 1.2 commands, responses and structures, and the
//!   HMAC-SHA1 authorization computations. No I/O.
//! - [`keys`]: pure key material helpers: the software wrap of an RSA key into a
//!   TPM_KEY12, the `TSS KEY BLOB` PEM format, public keys as RSA keys, TPM_BOUND_DATA.
//! - [`client`]: a std-only client that drives the codec over a transport (swtpm TCP or
//!   `/dev/tpm0`) with one reused OIAP session.

pub mod client;
pub mod codec;
pub mod keys;

/// The RSA implementation the key helpers take and return, re-exported so callers use
/// the same version.
pub use rsa;
