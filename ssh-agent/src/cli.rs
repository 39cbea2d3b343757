//! Command line, in ssh-agent's terms where ssh-agent has an equivalent.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Where keys go that the TPM cannot hold (Ed25519, P-521, DSA, unusual RSA sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NonTpmKeys {
    /// In this agent's locked memory, as ssh-agent keeps keys.
    Memory,
    /// To the upstream agent (`--upstream`).
    Upstream,
    /// Refused.
    Refuse,
}

/// A time as ssh-agent's `-t` takes it: seconds, or a sequence like `1h30m` (s, m, h, d,
/// w).
pub fn parse_time(text: &str) -> Result<u32, String> {
    let bad = || format!("\"{text}\" is not a time (seconds, or e.g. 90s, 5m, 1h30m, 2d, 1w)");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        total = total.saturating_add(number.parse::<u64>().map_err(|_| bad())?);
    } else if text.is_empty() || text.chars().last().is_some_and(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    u32::try_from(total).map_err(|_| bad())
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tpmd-ssh-agent",
    version,
    about = "An ssh-agent whose keys live in the TPM (through tpmd).",
    long_about = "An ssh-agent whose keys live in the TPM (through tpmd). Without -D it starts \
                  in the background and prints SSH_AUTH_SOCK=...; export SSH_AUTH_SOCK; for eval."
)]
pub struct Cli {
    /// Listen on this socket (default $XDG_RUNTIME_DIR/tpmd/ssh-agent.sock).
    #[arg(short = 'a', value_name = "SOCKET")]
    pub socket: Option<PathBuf>,

    /// Stay in the foreground (and log to stderr).
    #[arg(short = 'D')]
    pub foreground: bool,

    /// Debug mode, as ssh-agent's -d: the foreground, with debug logging.
    #[arg(short = 'd')]
    pub debug: bool,

    /// Print the environment for sh/bash (the default unless $SHELL is a csh).
    #[arg(short = 's', conflicts_with = "csh")]
    pub sh: bool,

    /// Print the environment for csh.
    #[arg(short = 'c')]
    pub csh: bool,

    /// Stop the agent named by $SSH_AGENT_PID.
    #[arg(short = 'k')]
    pub kill: bool,

    /// Default lifetime of added keys (seconds, or e.g. 1h30m), as ssh-agent's -t.
    #[arg(short = 't', value_name = "LIFE", value_parser = parse_time)]
    pub lifetime: Option<u32>,

    /// PKCS#11 providers ssh-add -s may load: comma-separated patterns matched against
    /// their real path (default /usr/lib*/*,/usr/local/lib*/*), as ssh-agent's -P.
    #[arg(short = 'P', value_name = "PATTERNS")]
    pub pkcs11_allowlist: Option<String>,

    /// Keys the TPM cannot hold: memory (the default), upstream (the default with
    /// --upstream) or refuse.
    #[arg(long, value_name = "WHERE")]
    pub non_tpm_keys: Option<NonTpmKeys>,

    /// Configuration file (default $XDG_CONFIG_HOME/tpmd/ssh-agent.conf).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Also serve the TPM key files in this directory (repeatable; ~/.ssh always).
    #[arg(long = "key-dir", value_name = "DIR")]
    pub key_dirs: Vec<PathBuf>,

    /// Also serve this TPM key file (repeatable).
    #[arg(long = "key-file", value_name = "FILE")]
    pub key_files: Vec<PathBuf>,

    /// Serve only the configured key files and directories: refuse adding, removing and
    /// locking (for a system instance that holds sshd's host keys).
    #[arg(long)]
    pub fixed_keys: bool,

    /// Do not serve the TPM key files in ~/.ssh.
    #[arg(long)]
    pub no_ssh_dir: bool,

    /// Forward listing and signing for keys this agent does not hold to this agent socket.
    #[arg(long, value_name = "SOCKET")]
    pub upstream: Option<PathBuf>,

    /// Save keys added with ssh-add, once wrapped, as TPM key files in this directory.
    #[arg(long, value_name = "DIR")]
    pub save_wrapped: Option<PathBuf>,

    /// How long a key auth value (PIN) entered once is remembered, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub auth_cache: Option<u64>,

    /// Talk to a tpmd on your session bus (`tpmd --user`) instead of the system bus.
    #[arg(long)]
    pub user: bool,

    /// How long to wait for tpmd to come back before a signature fails, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub tpmd_wait: Option<u64>,

    /// Give the running agent the auth value (PIN) of this TPM key file, read from stdin,
    /// and exit (the headless alternative to SSH_ASKPASS).
    #[arg(long, value_name = "KEYFILE")]
    pub set_auth: Option<PathBuf>,

    /// Log to this file (the default in the background: ssh-agent.log beside the socket).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Internal: run as the PKCS#11 helper process.
    #[arg(long, hide = true)]
    pub pkcs11_helper: bool,

    /// Internal: exit when this process (the one that started the agent) ends.
    #[arg(long, hide = true, value_name = "PID")]
    pub exit_with_parent: Option<i32>,

    /// Run this command with the agent, and stop the agent when it ends.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_read_as_ssh_agent_reads_them() {
        assert_eq!(parse_time("10"), Ok(10));
        assert_eq!(parse_time("90s"), Ok(90));
        assert_eq!(parse_time("1h30m"), Ok(5400));
        assert_eq!(parse_time("1w"), Ok(604800));
        assert!(parse_time("").is_err());
        assert!(parse_time("soon").is_err());
        assert!(parse_time("5x").is_err());
    }
}
