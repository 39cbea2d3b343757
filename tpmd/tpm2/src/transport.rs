//! Which TPM to talk to and how: the kernel resource manager, the raw device, or a
//! swtpm simulator over TCP.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tss_esapi::tcti_ldr::{DeviceConfig, NetworkTPMConfig, TctiNameConf};
use tss_esapi::Context;

/// Where the TPM is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A character device: `/dev/tpmrm0` (kernel resource manager) or `/dev/tpm0`
    /// (exclusive: the kernel lets one process open it at a time).
    Device(PathBuf),
    /// A swtpm (or other simulator speaking the swtpm protocol) on a TCP port; the
    /// control channel is on `port + 1`.
    Swtpm { host: String, port: u16 },
}

pub const KERNEL_RM_DEVICE: &str = "/dev/tpmrm0";
pub const RAW_DEVICE: &str = "/dev/tpm0";

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no TPM found: neither {KERNEL_RM_DEVICE} nor {RAW_DEVICE} exists; on a machine without a TPM run `tpmd --simulator`")]
    NoTpm,
    #[error("cannot open the TPM device {path}: {reason}")]
    Device { path: PathBuf, reason: String },
    #[error("no TPM simulator answers at {host}:{port}; start one with `tpmd-simulator` or run `tpmd --simulator`")]
    NoSimulator { host: String, port: u16 },
    #[error("bad transport {0:?}: expected device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321 or a device path")]
    Parse(String),
}

impl Transport {
    /// The kernel resource manager if present, else the raw device.
    pub fn detect() -> Result<Transport, TransportError> {
        Self::detect_in(Path::new(KERNEL_RM_DEVICE), Path::new(RAW_DEVICE))
    }

    fn detect_in(rm: &Path, raw: &Path) -> Result<Transport, TransportError> {
        [rm, raw]
            .into_iter()
            .find(|p| p.exists())
            .map(|p| Transport::Device(p.to_path_buf()))
            .ok_or(TransportError::NoTpm)
    }

    pub fn swtpm_tcp(port: u16) -> Transport {
        Transport::Swtpm {
            host: "127.0.0.1".to_string(),
            port,
        }
    }

    fn tcti(&self) -> Result<TctiNameConf, TransportError> {
        let conf = match self {
            Transport::Device(path) => {
                DeviceConfig::from_str(&path.to_string_lossy()).map(TctiNameConf::Device)
            }
            Transport::Swtpm { host, port } => {
                NetworkTPMConfig::from_str(&format!("host={host},port={port}"))
                    .map(TctiNameConf::Swtpm)
            }
        };
        conf.map_err(|_| TransportError::Parse(self.to_string()))
    }

    /// Opens an ESAPI context on this transport.
    pub fn open(&self) -> Result<Context, TransportError> {
        if let Transport::Device(path) = self {
            check_device(path)?;
        }
        Context::new(self.tcti()?).map_err(|_| match self {
            Transport::Device(path) => TransportError::Device {
                path: path.clone(),
                reason: "the TPM software stack could not use it".into(),
            },
            Transport::Swtpm { host, port } => TransportError::NoSimulator {
                host: host.clone(),
                port: *port,
            },
        })
    }
}

/// Explains why a device cannot be opened, in the terms of the fix, before the TSS
/// library fails with a bare response code.
fn check_device(path: &Path) -> Result<(), TransportError> {
    let reason = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => return Ok(()),
        Err(e) => match e.kind() {
            std::io::ErrorKind::NotFound => "it does not exist; is the TPM enabled in the firmware and the tpm_tis/tpm_crb driver loaded?".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied; run tpmd as a member of group tss (udev/60-tpmd.rules gives the device to that group)".to_string(),
            _ if e.raw_os_error() == Some(16) => format!("it is busy: another program holds it open; use {KERNEL_RM_DEVICE}, which is shared, or stop that program"),
            _ => e.to_string(),
        },
    };
    Err(TransportError::Device {
        path: path.to_path_buf(),
        reason,
    })
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Device(path) => write!(f, "device:{}", path.display()),
            Transport::Swtpm { host, port } => write!(f, "swtpm:host={host},port={port}"),
        }
    }
}

impl FromStr for Transport {
    type Err = TransportError;

    /// Accepts `device:PATH`, a bare device path, or `swtpm:host=H,port=P`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse_err = || TransportError::Parse(s.to_string());
        if let Some(path) = s.strip_prefix("device:") {
            return Ok(Transport::Device(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(Transport::Device(PathBuf::from(s)));
        }
        let rest = s.strip_prefix("swtpm:").ok_or_else(parse_err)?;
        let mut host = "127.0.0.1".to_string();
        let mut port = None;
        for part in rest.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("host", h)) => host = h.to_string(),
                Some(("port", p)) => port = Some(p.parse().map_err(|_| parse_err())?),
                _ => return Err(parse_err()),
            }
        }
        Ok(Transport::Swtpm {
            host,
            port: port.ok_or_else(parse_err)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_spellings() {
        assert_eq!(
            "device:/dev/tpmrm0".parse::<Transport>().ok(),
            Some(Transport::Device("/dev/tpmrm0".into()))
        );
        assert_eq!(
            "/dev/tpm0".parse::<Transport>().ok(),
            Some(Transport::Device("/dev/tpm0".into()))
        );
        assert_eq!(
            "swtpm:host=::1,port=2321".parse::<Transport>().ok(),
            Some(Transport::Swtpm {
                host: "::1".into(),
                port: 2321
            })
        );
        assert!("swtpm:port=x".parse::<Transport>().is_err());
        assert!("swtpm:".parse::<Transport>().is_err());
        assert!("tabrmd".parse::<Transport>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for t in [
            Transport::Device("/dev/tpm0".into()),
            Transport::swtpm_tcp(4000),
        ] {
            assert_eq!(t.to_string().parse::<Transport>().ok(), Some(t));
        }
    }

    #[test]
    fn detect_prefers_the_kernel_resource_manager() {
        let dir = std::env::temp_dir().join(format!("tpmd-detect-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let (rm, raw) = (dir.join("tpmrm0"), dir.join("tpm0"));
        assert!(matches!(
            Transport::detect_in(&rm, &raw),
            Err(TransportError::NoTpm)
        ));
        let _ = std::fs::write(&raw, b"");
        assert_eq!(
            Transport::detect_in(&rm, &raw).ok(),
            Some(Transport::Device(raw.clone()))
        );
        let _ = std::fs::write(&rm, b"");
        assert_eq!(
            Transport::detect_in(&rm, &raw).ok(),
            Some(Transport::Device(rm.clone()))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
