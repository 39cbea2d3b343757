//! The front of tpmd: the `org.tpmd.Daemon1` object, served on D-Bus and peer to peer on
//! tpmd's own socket (`socket`); caller identity (`caller`), and the conversion of TPM
//! errors into D-Bus errors. (The dictionary-attack budget that guards key auth values is
//! `crate::budget`, on the TPM thread.)

pub mod caller;
pub mod errors;
pub mod interface;
pub mod one_at_a_time;
pub mod socket;

pub use interface::Daemon;
