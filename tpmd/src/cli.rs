//! Command-line options of tpmd. Every option can also come from the environment, which
//! is how systemd units and tests configure it.

use std::path::PathBuf;

use crate::backend::Family;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "tpmd",
    version,
    about = "TPM key daemon: owns the TPM and serves org.tpmd.Daemon1 on D-Bus",
    after_help = "Examples:\n  tpmd --user --simulator        run on an embedded TPM simulator, on your session bus\n  tpmd --user --simulator --kernel-rm --latency discrete\n                                 the same, as /dev/tpmrm0 on a discrete TPM would be\n  tpmd --system                  the system service (what tpmd.service runs)\n  tpmd --tpm /dev/tpm0 --user    use the raw device instead of the kernel resource manager"
)]
pub struct Args {
    /// Serve on the system bus (the default).
    #[arg(long, conflicts_with_all = ["user", "address"])]
    pub system: bool,

    /// Serve on your session bus instead of the system bus.
    #[arg(long, conflicts_with = "address")]
    pub user: bool,

    /// Serve on this D-Bus address (a private bus, for tests).
    #[arg(long, env = "TPMD_BUS_ADDRESS")]
    pub address: Option<String>,

    /// Also serve peer to peer on this unix socket (clients prefer it: no bus daemon in
    /// between), or `none` [default: /run/tpmd/tpmd.sock; with --user
    /// $XDG_RUNTIME_DIR/tpmd/tpmd.sock; with --address none].
    #[arg(long, env = "TPMD_SOCKET", value_name = "PATH|none")]
    pub socket: Option<PathBuf>,

    /// The TPM: /dev/tpmrm0, /dev/tpm0, or swtpm:host=H,port=P. Detected when not given.
    #[arg(long, env = "TPMD_TPM", conflicts_with = "simulator")]
    pub tpm: Option<String>,

    /// Run on an embedded swtpm simulator whose state persists in --simulator-state.
    /// Only your user can reach it (no TCP), and it ends with tpmd.
    #[arg(long)]
    pub simulator: bool,

    /// With --simulator: put a model of the kernel resource manager (/dev/tpmrm0)
    /// between tpmd and the simulator.
    #[arg(long, requires = "simulator", env = "TPMD_SIMULATOR_KERNEL_RM")]
    pub kernel_rm: bool,

    /// With --simulator: delay each TPM command as a real TPM would, after a profile:
    /// `discrete`, `firmware` or a profile file (TOML, see simulator/profiles/).
    #[arg(
        long,
        requires = "simulator",
        env = "TPMD_SIMULATOR_LATENCY",
        value_name = "PROFILE"
    )]
    pub latency: Option<String>,

    /// The TPM is a TPM 1.2: with --simulator, start a 1.2 simulator; with --tpm, drive the
    /// device or socket as a 1.2. Devices are otherwise detected through sysfs.
    #[arg(long, env = "TPMD_TPM12")]
    pub tpm12: bool,

    /// A file holding the SRK's password, for a TPM 1.2 whose SRK secret is not a
    /// well-known one (read once at start; a trailing newline is ignored).
    #[arg(long, env = "TPMD_SRK_AUTH_FILE", value_name = "FILE")]
    pub srk_auth_file: Option<PathBuf>,

    /// Where the embedded simulator keeps its state
    /// [default: $XDG_STATE_HOME/tpmd/simulator, or simulator-tpm12 with --tpm12].
    #[arg(long, env = "TPMD_SIMULATOR_STATE")]
    pub simulator_state: Option<PathBuf>,

    /// Where tpmd keeps its own state (the per-user dictionary-attack records)
    /// [default: $STATE_DIRECTORY or /var/lib/tpmd on the system bus, else
    /// $XDG_STATE_HOME/tpmd].
    #[arg(long, env = "TPMD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Signed policies (`*.policy`, made by `tpm-keyctl policy sign`) tpmd tries for keys
    /// whose policy starts with TPM2_PolicyAuthorize; read on each request that needs one.
    #[arg(long, env = "TPMD_POLICY_DIR", value_name = "DIR",
          default_value = tpmd_api::auth_policy_file::SYSTEM_POLICY_DIR)]
    pub policy_dir: PathBuf,

    /// How many requests one user may have waiting for the TPM; past that, callers are
    /// told to retry.
    #[arg(long, env = "TPMD_QUEUE_PER_USER", value_name = "N",
          default_value_t = crate::backend::worker::DEFAULT_QUEUE_PER_UID as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_per_user: u32,

    /// How many keys may stay loaded at once; more are swapped in and out [default: on a
    /// TPM tpmd owns, its free slots minus the reserve; on /dev/tpmrm0, 32 connections;
    /// on a TPM 1.2, 3].
    #[arg(long, env = "TPMD_MAX_LOADED_KEYS")]
    pub max_loaded_keys: Option<usize>,

    /// On /dev/tpm0: transient object slots left free for the machine's other TPM users
    /// (the kernel's resource manager swaps their objects in for each command)
    /// [default: 2; 0 on a simulator].
    #[arg(long, env = "TPMD_RESERVE_SLOTS")]
    pub reserve_slots: Option<usize>,

    /// Log filter, e.g. info, debug, tpmd=trace.
    #[arg(long, env = "TPMD_LOG", default_value = "info")]
    pub log_level: String,
}

impl Args {
    /// The family given on the command line; `None` means detect it.
    pub fn family(&self) -> Option<Family> {
        self.tpm12.then_some(Family::Tpm12)
    }

    /// Where to serve peer to peer, and whether the path is a default (whose directory
    /// tpmd creates) rather than one given explicitly; `None`: no socket.
    pub fn socket_path(&self) -> Option<(PathBuf, bool)> {
        match &self.socket {
            Some(path) if path.as_os_str() == tpmd_api::client::connection::SOCKET_OFF => None,
            Some(path) => Some((path.clone(), false)),
            // A private bus (tests) gets a socket only when asked: the default paths
            // belong to the machine's tpmd.
            None if self.address.is_some() => None,
            None => tpmd_api::client::connection::default_socket(self.user).map(|p| (p, true)),
        }
    }

    /// tpmd's state directory: the option, else systemd's StateDirectory= for the
    /// system service, else the user's state directory.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        let on_system_bus = !self.user && self.address.is_none();
        if on_system_bus {
            // systemd may list several directories, separated by colons; ours is first.
            return std::env::var("STATE_DIRECTORY")
                .ok()
                .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
                .filter(|dir| !dir.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("/var/lib/tpmd"));
        }
        user_state_home().join("tpmd")
    }

    pub fn simulator_state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.simulator_state {
            return dir.clone();
        }
        let base = user_state_home();
        let name = if self.tpm12 {
            "simulator-tpm12"
        } else {
            "simulator"
        };
        base.join("tpmd").join(name)
    }
}

/// $XDG_STATE_HOME, else ~/.local/state, else /var/lib.
fn user_state_home() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
}
