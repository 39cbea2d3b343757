//! Moving command bytes to a TPM 1.2 and response bytes back: the byte transport shared
//! with the TPM 2.0 stack (a swtpm socket or a character device).

pub use tpmd_transport::{CommandCounter, Connection, Transport, TransportError};
