//! tpmd: the one program that talks to the TPM. `tpm` owns the TPM (resource manager,
//! key operations, the TPM thread); `service` serves it on D-Bus; `daemon` wires them
//! together from the command line.

pub mod cli;
pub mod daemon;
pub mod logging;
pub mod service;
pub mod tpm;
