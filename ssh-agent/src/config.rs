//! Settings: the configuration file, overridden by the command line.
//!
//! The file has one `key = value` per line; `#` starts a comment. Keys: `socket`,
//! `key-dir` (repeatable), `ssh-dir` (yes/no), `upstream`, `save-wrapped`, `auth-cache`
//! (seconds), `tpmd-wait` (seconds), `log-file`, `bus` (system or session). `~/` at the start of a path is the home
//! directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::Cli;
pub use crate::cli::NonTpmKeys;
use crate::error::StartError;

#[derive(Debug, Clone)]
pub struct Settings {
    pub socket: PathBuf,
    /// Whether `socket` is the default, whose directory the agent owns and makes 0700.
    pub default_socket: bool,
    pub foreground: bool,
    pub key_dirs: Vec<PathBuf>,
    pub key_files: Vec<PathBuf>,
    /// Adding, removing and locking are refused.
    pub fixed_keys: bool,
    pub upstream: Option<PathBuf>,
    pub save_wrapped: Option<PathBuf>,
    pub auth_cache: Duration,
    pub tpmd_wait: Duration,
    pub log_file: Option<PathBuf>,
    /// tpmd on the session bus (`tpmd --user`) rather than the system bus.
    pub session_bus: bool,
    pub non_tpm_keys: NonTpmKeys,
    /// `-t`: the lifetime of keys added without one.
    pub default_lifetime: Option<Duration>,
    /// `-P`: the PKCS#11 providers that may be loaded.
    pub pkcs11_allowlist: String,
    /// `-d`: debug logging in the foreground.
    pub debug: bool,
}

const DEFAULT_AUTH_CACHE_SECS: u64 = 300;
const DEFAULT_TPMD_WAIT_SECS: u64 = 5;

#[derive(Debug, Default)]
struct FileSettings {
    socket: Option<PathBuf>,
    key_dirs: Vec<PathBuf>,
    key_files: Vec<PathBuf>,
    fixed_keys: Option<bool>,
    ssh_dir: Option<bool>,
    upstream: Option<PathBuf>,
    save_wrapped: Option<PathBuf>,
    auth_cache: Option<u64>,
    tpmd_wait: Option<u64>,
    log_file: Option<PathBuf>,
    session_bus: Option<bool>,
    non_tpm_keys: Option<NonTpmKeys>,
    pkcs11_allowlist: Option<String>,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn expand(value: &str) -> PathBuf {
    match (value.strip_prefix("~/"), home()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(value),
    }
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))?;
    Some(base.join("tpmd").join("ssh-agent.conf"))
}

fn parse_file(path: &Path, text: &str) -> Result<FileSettings, StartError> {
    let mut out = FileSettings::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), index + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(StartError::Config(format!(
                "{}: expected `key = value`, found \"{line}\"",
                at()
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        let seconds = |v: &str| {
            v.parse::<u64>().map_err(|_| {
                StartError::Config(format!("{}: {key} must be a number of seconds", at()))
            })
        };
        match key {
            "socket" => out.socket = Some(expand(value)),
            "key-dir" => out.key_dirs.push(expand(value)),
            "key-file" => out.key_files.push(expand(value)),
            "ssh-dir" => out.ssh_dir = Some(yes_no(value).ok_or_else(|| {
                StartError::Config(format!("{}: ssh-dir must be yes or no", at()))
            })?),
            "fixed-keys" => out.fixed_keys = Some(yes_no(value).ok_or_else(|| {
                StartError::Config(format!("{}: fixed-keys must be yes or no", at()))
            })?),
            "upstream" => out.upstream = Some(expand(value)),
            "save-wrapped" => out.save_wrapped = Some(expand(value)),
            "auth-cache" => out.auth_cache = Some(seconds(value)?),
            "tpmd-wait" => out.tpmd_wait = Some(seconds(value)?),
            "log-file" => out.log_file = Some(expand(value)),
            "bus" => {
                out.session_bus = Some(match value {
                    "session" | "user" => true,
                    "system" => false,
                    _ => {
                        return Err(StartError::Config(format!(
                            "{}: bus must be system or session",
                            at()
                        )))
                    }
                })
            }
            "non-tpm-keys" => {
                out.non_tpm_keys = Some(match value {
                    "memory" => NonTpmKeys::Memory,
                    "upstream" => NonTpmKeys::Upstream,
                    "refuse" => NonTpmKeys::Refuse,
                    _ => {
                        return Err(StartError::Config(format!(
                            "{}: non-tpm-keys must be memory, upstream or refuse",
                            at()
                        )))
                    }
                })
            }
            "pkcs11-providers" => out.pkcs11_allowlist = Some(value.to_string()),
            other => {
                return Err(StartError::Config(format!(
                    "{}: unknown setting \"{other}\" (known: socket, key-dir, key-file, fixed-keys, ssh-dir, upstream, save-wrapped, auth-cache, tpmd-wait, log-file, bus, non-tpm-keys, pkcs11-providers)",
                    at()
                )))
            }
        }
    }
    Ok(out)
}

fn yes_no(value: &str) -> Option<bool> {
    match value {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

/// Whether two paths name the same file (the same path when neither exists yet).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `$XDG_RUNTIME_DIR/tpmd/ssh-agent.sock`; without XDG_RUNTIME_DIR, a new directory
/// in $TMPDIR as ssh-agent makes (see `socket::fresh_directory`).
pub fn default_socket_path() -> Result<PathBuf, StartError> {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir).join("tpmd").join("ssh-agent.sock")),
        None => crate::socket::fresh_directory()
            .map(|dir| dir.join(format!("agent.{}", std::process::id()))),
    }
}

/// Whether systemd passed the listening socket (LISTEN_FDS).
pub fn socket_activated() -> bool {
    std::env::var_os("LISTEN_FDS").is_some()
}

impl Settings {
    pub fn load(cli: &Cli) -> Result<Settings, StartError> {
        let file = match cli.config.clone().or_else(default_config_path) {
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(text) => parse_file(&path, &text)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && cli.config.is_none() => {
                    FileSettings::default()
                }
                Err(e) => {
                    return Err(StartError::Config(format!(
                        "cannot read the configuration file {}: {e}",
                        path.display()
                    )))
                }
            },
            None => FileSettings::default(),
        };
        let (socket, default_socket) = match cli.socket.clone().or(file.socket) {
            Some(path) => (path, false),
            // systemd passes the socket itself: no path needed.
            None if socket_activated() => (PathBuf::new(), true),
            None => (default_socket_path()?, true),
        };
        let mut key_dirs = Vec::new();
        if !cli.no_ssh_dir && file.ssh_dir != Some(false) {
            if let Some(home) = home() {
                key_dirs.push(home.join(".ssh"));
            }
        }
        key_dirs.extend(file.key_dirs);
        key_dirs.extend(cli.key_dirs.iter().cloned());
        let mut key_files = file.key_files;
        key_files.extend(cli.key_files.iter().cloned());
        let upstream = cli.upstream.clone().or(file.upstream);
        let non_tpm_keys =
            cli.non_tpm_keys
                .or(file.non_tpm_keys)
                .unwrap_or(if upstream.is_some() {
                    NonTpmKeys::Upstream
                } else {
                    NonTpmKeys::Memory
                });
        if non_tpm_keys == NonTpmKeys::Upstream && upstream.is_none() {
            return Err(StartError::Config(
                "--non-tpm-keys upstream needs an upstream agent: give --upstream SOCKET".into(),
            ));
        }
        if upstream.as_ref().is_some_and(|u| same_file(u, &socket)) {
            return Err(StartError::Config(format!(
                "the upstream agent {} is this agent's own socket; give another agent's socket (OpenSSH's ssh-agent, gcr's)",
                socket.display()
            )));
        }
        Ok(Settings {
            socket,
            default_socket,
            foreground: cli.foreground || cli.debug,
            key_dirs,
            key_files,
            fixed_keys: cli.fixed_keys || file.fixed_keys.unwrap_or(false),
            upstream,
            save_wrapped: cli.save_wrapped.clone().or(file.save_wrapped),
            auth_cache: Duration::from_secs(
                cli.auth_cache
                    .or(file.auth_cache)
                    .unwrap_or(DEFAULT_AUTH_CACHE_SECS),
            ),
            tpmd_wait: Duration::from_secs(
                cli.tpmd_wait
                    .or(file.tpmd_wait)
                    .unwrap_or(DEFAULT_TPMD_WAIT_SECS),
            ),
            log_file: cli.log_file.clone().or(file.log_file),
            session_bus: cli.user || file.session_bus.unwrap_or(false),
            non_tpm_keys,
            default_lifetime: cli.lifetime.map(|t| Duration::from_secs(u64::from(t))),
            pkcs11_allowlist: cli
                .pkcs11_allowlist
                .clone()
                .or(file.pkcs11_allowlist)
                .unwrap_or_else(|| crate::pkcs11::DEFAULT_ALLOWLIST.to_string()),
            debug: cli.debug,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_rejects_unknown_ones() {
        let text = "# comment\nkey-dir = /a\nkey-dir=/b # two\nupstream = /u.sock\nauth-cache = 60\nssh-dir = no\n";
        let s = parse_file(Path::new("c"), text).unwrap();
        assert_eq!(s.key_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(s.upstream, Some(PathBuf::from("/u.sock")));
        assert_eq!(s.auth_cache, Some(60));
        assert_eq!(s.ssh_dir, Some(false));
        let err = parse_file(Path::new("c"), "colour = red").unwrap_err();
        assert!(err.to_string().contains("c:1: unknown setting"), "{err}");
        let err = parse_file(Path::new("c"), "auth-cache = soon").unwrap_err();
        assert!(err.to_string().contains("number of seconds"), "{err}");
    }
}
