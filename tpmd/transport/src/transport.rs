//! Where a TPM is, as users write it: `device:/dev/tpmrm0` (or a bare path),
//! `swtpm:host=H,port=P`, `swtpm:path=SOCKET`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A character device: `/dev/tpmrm0` (the kernel resource manager) or `/dev/tpm0`.
    Device(PathBuf),
    /// A swtpm data channel on TCP (`swtpm socket --server type=tcp,port=P`).
    Swtpm { host: String, port: u16 },
    /// A swtpm data channel on a unix socket (`swtpm socket --server type=unixio,path=S`).
    SwtpmUnix(PathBuf),
    /// A model of the kernel resource manager in front of a simulator (the simulator
    /// crate's `kernel_rm`): each connection is a space, as each open of /dev/tpmrm0 is.
    KernelRmSocket(PathBuf),
}

#[derive(Debug, thiserror::Error)]
#[error("bad TPM address {0:?}: expected /dev/tpmrm0, /dev/tpm0, device:PATH, swtpm:host=127.0.0.1,port=2321, swtpm:path=/run/user/1000/swtpm.sock or tpmrm:path=SOCKET")]
pub struct ParseError(pub String);

pub const KERNEL_RM_DEVICE: &str = "/dev/tpmrm0";
pub const RAW_DEVICE: &str = "/dev/tpm0";

#[derive(Debug, thiserror::Error)]
#[error("no TPM found: neither {KERNEL_RM_DEVICE} nor {RAW_DEVICE} exists; on a machine without a TPM run `tpmd --simulator`")]
pub struct NoTpm;

impl Transport {
    /// The kernel resource manager if present, else the raw device.
    pub fn detect() -> Result<Transport, NoTpm> {
        Self::detect_in(Path::new(KERNEL_RM_DEVICE), Path::new(RAW_DEVICE))
    }

    fn detect_in(rm: &Path, raw: &Path) -> Result<Transport, NoTpm> {
        [rm, raw]
            .into_iter()
            .find(|p| p.exists())
            .map(|p| Transport::Device(p.to_path_buf()))
            .ok_or(NoTpm)
    }

    /// A swtpm data port on loopback.
    pub fn swtpm_tcp(port: u16) -> Transport {
        Transport::Swtpm {
            host: "127.0.0.1".to_string(),
            port,
        }
    }

    /// The kernel resource manager: every object of a connection is swapped in and out
    /// around each command, and objects are private to the connection.
    pub fn is_kernel_rm(&self) -> bool {
        match self {
            Transport::Device(path) => is_kernel_rm_device(path),
            Transport::KernelRmSocket(_) => true,
            _ => false,
        }
    }

    /// swtpm serves one client at a time: a connection to it is held for one command
    /// only, as libtss2's swtpm TCTI does, or through a burst by a caller that releases it
    /// when idle (`Connection::hold_between_commands`), so that other programs
    /// (tpm2-tools, a test harness resetting the simulator) can take turns. Everything
    /// else keeps its connection, which on a kernel resource manager is what holds our
    /// objects.
    pub fn connects_per_command(&self) -> bool {
        matches!(self, Transport::Swtpm { .. } | Transport::SwtpmUnix(_))
    }
}

/// `/dev/tpmrm0`, `/dev/tpmrm1`...
pub fn is_kernel_rm_device(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("tpmrm"))
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Device(path) => write!(f, "device:{}", path.display()),
            Transport::Swtpm { host, port } => write!(f, "swtpm:host={host},port={port}"),
            Transport::SwtpmUnix(path) => write!(f, "swtpm:path={}", path.display()),
            Transport::KernelRmSocket(path) => write!(f, "tpmrm:path={}", path.display()),
        }
    }
}

impl FromStr for Transport {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse_err = || ParseError(s.to_string());
        if let Some(path) = s.strip_prefix("device:") {
            return Ok(Transport::Device(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(Transport::Device(PathBuf::from(s)));
        }
        if let Some(rest) = s.strip_prefix("tpmrm:path=") {
            if rest.is_empty() || rest.contains(',') {
                return Err(parse_err());
            }
            return Ok(Transport::KernelRmSocket(PathBuf::from(rest)));
        }
        let rest = s.strip_prefix("swtpm:").ok_or_else(parse_err)?;
        let (mut host, mut port, mut path) = (None, None, None);
        for part in rest.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("host", h)) if !h.is_empty() => host = Some(h.to_string()),
                Some(("port", p)) => port = Some(p.parse().map_err(|_| parse_err())?),
                Some(("path", p)) if !p.is_empty() => path = Some(PathBuf::from(p)),
                _ => return Err(parse_err()),
            }
        }
        match (host, port, path) {
            (None, None, Some(path)) => Ok(Transport::SwtpmUnix(path)),
            (host, Some(port), None) => Ok(Transport::Swtpm {
                host: host.unwrap_or_else(|| "127.0.0.1".into()),
                port,
            }),
            _ => Err(parse_err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_and_displays_back() {
        let cases = [
            (
                "device:/dev/tpmrm0",
                Transport::Device("/dev/tpmrm0".into()),
            ),
            ("/dev/tpm0", Transport::Device("/dev/tpm0".into())),
            (
                "swtpm:host=::1,port=2321",
                Transport::Swtpm {
                    host: "::1".into(),
                    port: 2321,
                },
            ),
            (
                "swtpm:port=2321",
                Transport::Swtpm {
                    host: "127.0.0.1".into(),
                    port: 2321,
                },
            ),
            (
                "swtpm:path=/run/x.sock",
                Transport::SwtpmUnix("/run/x.sock".into()),
            ),
        ];
        for (text, endpoint) in cases {
            let parsed: Transport = text.parse().unwrap();
            assert_eq!(parsed, endpoint, "{text}");
            assert_eq!(parsed.to_string().parse::<Transport>().unwrap(), endpoint);
        }
        for bad in [
            "swtpm:port=x",
            "swtpm:",
            "tabrmd",
            "swtpm:path=/x,port=3",
            "swtpm:path=",
        ] {
            assert!(bad.parse::<Transport>().is_err(), "{bad}");
        }
    }

    #[test]
    fn detect_prefers_the_kernel_resource_manager() {
        let dir = std::env::temp_dir().join(format!("tpmd-detect-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let (rm, raw) = (dir.join("tpmrm0"), dir.join("tpm0"));
        assert!(Transport::detect_in(&rm, &raw).is_err());
        std::fs::write(&raw, b"").unwrap();
        assert_eq!(
            Transport::detect_in(&rm, &raw).unwrap(),
            Transport::Device(raw.clone())
        );
        std::fs::write(&rm, b"").unwrap();
        assert_eq!(
            Transport::detect_in(&rm, &raw).unwrap(),
            Transport::Device(rm.clone())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_tpmrm_devices_are_the_kernel_resource_manager() {
        assert!(Transport::Device("/dev/tpmrm0".into()).is_kernel_rm());
        assert!(!Transport::Device("/dev/tpm0".into()).is_kernel_rm());
        assert!(!Transport::SwtpmUnix("/tmp/tpmrm0".into()).is_kernel_rm());
        assert!(Transport::KernelRmSocket("/tmp/rm.sock".into()).is_kernel_rm());
    }
}
