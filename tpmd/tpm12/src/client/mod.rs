//! A std-only TPM 1.2 client: a transport plus the codec, with one OIAP session reused
//! across commands (continueAuthSession), OSAP where the TPM requires it, Startup when the
//! TPM was just initialised, and the SRK/owner well-known secrets tried in both
//! conventions (the one that worked is remembered).

pub mod admin;
pub mod error;
pub mod keys;
pub mod session;
pub mod transport;

pub use admin::NvState;
pub use error::ClientError;
pub use session::{SecretSlot, Stats, Tpm12};
pub use transport::{Connection, Transport, TransportError};
