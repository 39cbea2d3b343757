//! The D-Bus front of tpmd: the `org.tpmd.Daemon1` object, caller identity, the auth
//! rate limit, and the conversion of TPM errors into D-Bus errors.

pub mod errors;
pub mod interface;
pub mod rate_limit;

pub use interface::Daemon;
