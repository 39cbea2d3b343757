//! tpm-keyctl's errors: each prints as one line that says what to do.

use std::path::{Path, PathBuf};

use tpmd_api::DaemonError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("tpmd is not running on the {bus}; start it with {start}")]
    NotRunning {
        bus: &'static str,
        start: &'static str,
    },
    #[error("cannot connect to the {bus} ({detail}); start it with {start}")]
    NoBus {
        bus: &'static str,
        detail: String,
        start: &'static str,
    },
    #[error("{0}")]
    Daemon(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    pub fn file(path: &Path, message: impl std::fmt::Display) -> CliError {
        CliError::File {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub fn io(path: &Path, error: std::io::Error) -> CliError {
        let message = match error.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => error.to_string(),
        };
        CliError::file(path, message)
    }

    fn not_running(user: bool) -> CliError {
        if user {
            CliError::NotRunning {
                bus: "session bus",
                start: "`tpmd --user --simulator &` (or `systemctl --user start tpmd`)",
            }
        } else {
            CliError::NotRunning {
                bus: "system bus",
                start: "`sudo systemctl start tpmd` (no TPM? try `tpmd --user --simulator &` and pass --user)",
            }
        }
    }

    /// Turns a D-Bus failure into a line for the user.
    pub fn from_daemon(error: DaemonError, user: bool) -> CliError {
        match error {
            DaemonError::ZBus(e) => Self::from_zbus(e, user),
            other => CliError::Daemon(other.message()),
        }
    }

    pub fn from_zbus(error: zbus::Error, user: bool) -> CliError {
        match &error {
            zbus::Error::FDO(e)
                if matches!(
                    **e,
                    zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_)
                ) =>
            {
                Self::not_running(user)
            }
            zbus::Error::InputOutput(_) | zbus::Error::Address(_) => Self::not_running(user),
            _ => CliError::Daemon(format!("D-Bus: {error}")),
        }
    }

    /// A failure to reach the bus itself, before any call.
    pub fn no_bus(error: zbus::Error, user: bool) -> CliError {
        let detail = error.to_string();
        match Self::from_zbus(error, user) {
            CliError::Daemon(_) | CliError::NotRunning { .. } if user => CliError::NoBus {
                bus: "session bus",
                detail,
                start: "`dbus-run-session -- bash`, then `tpmd --user --simulator &`",
            },
            CliError::Daemon(_) | CliError::NotRunning { .. } => CliError::NoBus {
                bus: "system bus",
                detail,
                start: "`sudo systemctl start dbus tpmd` (no system bus? run `tpmd --user --simulator &` and pass --user)",
            },
            other => other,
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;
