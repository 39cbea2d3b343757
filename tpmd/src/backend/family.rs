//! Which TPM family is behind a transport.

use std::fmt;
use std::path::Path;

use tpmd_tpm2::transport::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Tpm2,
    Tpm12,
}

impl Family {
    /// The family of a device from what the kernel says about it; TPM 2.0 when it cannot
    /// tell (a simulator socket is named explicitly with `--tpm12`).
    pub fn detect(transport: &Transport) -> Family {
        match transport {
            Transport::Device(path) => Family::of_device(path).unwrap_or(Family::Tpm2),
            _ => Family::Tpm2,
        }
    }

    /// `/dev/tpm0` or `/dev/tpmrm0` -> `/sys/class/tpm/tpm0/tpm_version_major`.
    fn of_device(path: &Path) -> Option<Family> {
        let name = path.file_name()?.to_str()?;
        let index = name
            .strip_prefix("tpmrm")
            .or_else(|| name.strip_prefix("tpm"))?;
        let major =
            std::fs::read_to_string(format!("/sys/class/tpm/tpm{index}/tpm_version_major")).ok()?;
        match major.trim() {
            "1" => Some(Family::Tpm12),
            "2" => Some(Family::Tpm2),
            _ => None,
        }
    }

    /// As GetInfo reports it.
    pub fn version(self) -> &'static str {
        match self {
            Family::Tpm2 => "2.0",
            Family::Tpm12 => "1.2",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TPM {}", self.version())
    }
}
