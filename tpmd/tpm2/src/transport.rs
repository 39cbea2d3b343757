//! Which TPM to talk to: the kernel resource manager, the raw device, or a swtpm
//! simulator over TCP or a unix socket. The raw byte transport is the `tpmd-transport`
//! crate, shared with the TPM 1.2 stack; this module adds an ESAPI context on the same
//! addresses, for tools and tests that use tss-esapi.

use std::str::FromStr;

use tss_esapi::tcti_ldr::{DeviceConfig, NetworkTPMConfig, TctiNameConf};
use tss_esapi::Context;

pub use tpmd_transport::{
    CommandCounter, Connection, NoTpm, ParseError, Transport, TransportError, KERNEL_RM_DEVICE,
    RAW_DEVICE,
};

#[derive(Debug, thiserror::Error)]
pub enum EsysOpenError {
    #[error(transparent)]
    Device(#[from] TransportError),
    #[error("cannot open {0} with tss-esapi: the TPM software stack could not use it")]
    Tcti(String),
    #[error("no TPM simulator answers at {0}; start one with `tpmd-simulator` or run `tpmd --simulator`")]
    NoSimulator(String),
    #[error("tss-esapi cannot reach {0}: its swtpm TCTI takes a host and port only")]
    UnixSocket(String),
}

/// An ESAPI context on a transport (tss-esapi's own TCTI, not our transport).
pub trait OpenEsys {
    fn open(&self) -> Result<Context, EsysOpenError>;
}

impl OpenEsys for Transport {
    fn open(&self) -> Result<Context, EsysOpenError> {
        let conf = match self {
            Transport::Device(path) => {
                // Explains a missing or forbidden device in the terms of the fix before
                // the TSS library fails with a bare response code.
                drop(Connection::open(self, None)?);
                DeviceConfig::from_str(&path.to_string_lossy()).map(TctiNameConf::Device)
            }
            Transport::Swtpm { host, port } => {
                NetworkTPMConfig::from_str(&format!("host={host},port={port}"))
                    .map(TctiNameConf::Swtpm)
            }
            Transport::SwtpmUnix(_) | Transport::KernelRmSocket(_) => {
                return Err(EsysOpenError::UnixSocket(self.to_string()))
            }
        }
        .map_err(|_| EsysOpenError::Tcti(self.to_string()))?;
        Context::new(conf).map_err(|_| match self {
            Transport::Swtpm { .. } => EsysOpenError::NoSimulator(self.to_string()),
            _ => EsysOpenError::Tcti(self.to_string()),
        })
    }
}
