//! Command line, in ssh-agent's terms where ssh-agent has an equivalent.

use std::path::PathBuf;

use clap::Parser;

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

    /// Configuration file (default $XDG_CONFIG_HOME/tpmd/ssh-agent.conf).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Also serve the TPM key files in this directory (repeatable; ~/.ssh always).
    #[arg(long = "key-dir", value_name = "DIR")]
    pub key_dirs: Vec<PathBuf>,

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
}
