//! The D-Bus front of tpmd: the `org.tpmd.Daemon1` object, caller identity, and the
//! conversion of TPM errors into D-Bus errors. (The dictionary-attack budget that guards
//! key auth values is `crate::budget`, on the TPM thread.)

pub mod errors;
pub mod interface;
pub mod one_at_a_time;

pub use interface::Daemon;
