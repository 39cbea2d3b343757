//! The front of tpmd: the `org.tpmd.Daemon1` object, served on D-Bus and peer to peer on
//! tpmd's own socket (`socket`); caller identity (`caller`), the auth rate limit, and the
//! conversion of TPM errors into D-Bus errors.

pub mod caller;
pub mod errors;
pub mod interface;
pub mod rate_limit;
pub mod socket;

pub use interface::Daemon;
