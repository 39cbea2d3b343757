//! tpmd: the one program that talks to the TPM. `backend` owns the TPM (one backend per
//! family, each with its resource manager and key operations, and the TPM thread);
//! `service` serves it on D-Bus; `daemon` wires them together from the command line.

pub mod backend;
pub mod cli;
pub mod daemon;
#[cfg(feature = "simulator")]
pub mod embedded_simulator;
pub mod logging;
pub mod service;
