//! The TPM 2.0 layer of tpmd, over tss-esapi: which transport to open, the standard
//! templates (SRK, ECC owner primary), SRK provisioning. The simulator harness and the
//! daemon both build on it; nothing here knows about D-Bus or key files.

pub mod srk;
pub mod transport;
