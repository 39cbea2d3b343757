//! The TPM 2.0 layer of tpmd: the wire codec of the commands tpmd sends (`wire`, no
//! I/O), a TPM on one connection (`tpm`), which transport to open, the standard
//! templates (SRK, ECC owner primary) and SRK provisioning. The simulator harness and
//! the daemon both build on it; nothing here knows about D-Bus or key files.
//! tss-esapi is used for the templates and by tools and tests that want an ESAPI
//! context on the same TPM.

pub mod session;
pub mod srk;
pub mod tpm;
pub mod transport;
pub mod wire;
