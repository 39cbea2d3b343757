//! One module per subcommand; each talks to tpmd through the shared proxy.

mod doctor;
mod generate;
mod info;
mod maintenance;
mod passwd;
mod pcr;
mod policy_sign;
mod pubkey;
mod restore;
mod sign;
mod srk;
mod wrap;

use tpmd_api::Daemon1Proxy;

pub(crate) use wrap::read_key;

use crate::cli::{Args, Command, PolicyCommand};
use crate::error::{CliError, CliResult};

/// A connected proxy plus what is needed to explain its errors.
pub struct Tpmd {
    pub proxy: Daemon1Proxy<'static>,
    pub user: bool,
}

impl Tpmd {
    pub async fn connect(user: bool) -> CliResult<Tpmd> {
        let proxy = tpmd_api::dbus::connect(user)
            .await
            .map_err(|e| CliError::no_bus(e, user))?;
        Ok(Tpmd { proxy, user })
    }

    /// Maps a D-Bus call's error to a user-facing one.
    pub fn check<T>(&self, result: Result<T, tpmd_api::DaemonError>) -> CliResult<T> {
        result.map_err(|e| CliError::from_daemon(e, self.user))
    }
}

pub async fn run(args: Args) -> CliResult<()> {
    let json = args.json;
    match args.command {
        Command::Pubkey(a) => pubkey::run(&a),
        Command::Doctor(a) => doctor::run(args.user, json, &a.keys).await,
        Command::Wrap(a) if a.parent_pub.is_some() => wrap::run(None, &a, json).await,
        // Offline, with values from a file and a software owner key: no tpmd needed.
        Command::Policy(PolicyCommand::Sign(a)) if a.values.is_some() && !owner_in_tpm(&a.with) => {
            policy_sign::run(None, &a, json).await
        }
        command => {
            let tpmd = Tpmd::connect(args.user).await?;
            match command {
                Command::Info => info::info(&tpmd, json).await,
                Command::Stats => info::stats(&tpmd, json).await,
                Command::Srk(c) => srk::run(&tpmd, c, json).await,
                Command::ResetLockout(a) => maintenance::reset_lockout(&tpmd, &a, json).await,
                Command::LockNv => maintenance::lock_nv(&tpmd, json).await,
                Command::Wrap(a) => wrap::run(Some(&tpmd), &a, json).await,
                Command::Generate(a) => generate::run(&tpmd, &a, json).await,
                Command::Sign(a) => sign::run(&tpmd, &a).await,
                Command::Passwd(a) => passwd::run(&tpmd, &a, json).await,
                Command::Restore(a) => restore::run(&tpmd, &a, json).await,
                Command::Pcr(a) => pcr::run(&tpmd, &a, json).await,
                Command::Policy(PolicyCommand::Sign(a)) => {
                    policy_sign::run(Some(&tpmd), &a, json).await
                }
                Command::Pubkey(_) | Command::Doctor(_) => Ok(()),
            }
        }
    }
}

/// Whether an owner key file is a TPM key (signing goes through tpmd).
fn owner_in_tpm(path: &std::path::Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| tpmd_api::client::is_tpm_key_file(&bytes))
}
