//! tpmd: the one program that talks to the TPM. `backend` owns the TPM (one backend per
//! family, each with its resource manager and key operations, and the TPM thread);
//! `budget` shares the TPM's dictionary-attack counter between users; `service` serves
//! it on D-Bus; `daemon` wires them together from the command line; `crash` ends the
//! process on any panic.

pub mod backend;
pub mod budget;
pub mod cli;
pub mod crash;
pub mod daemon;
#[cfg(feature = "simulator")]
pub mod embedded_simulator;
pub mod logging;
pub mod service;
