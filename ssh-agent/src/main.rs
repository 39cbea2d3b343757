//! tpmd-ssh-agent: an ssh-agent whose keys live in the TPM, through tpmd.

mod add;
mod agent;
mod askpass;
mod background;
mod cert;
mod cli;
mod config;
mod connection;
mod error;
mod extension;
mod keys;
mod lock;
mod logging;
mod run;
mod set_auth;
mod sign;
mod socket;
mod tpmd;
mod upstream;

use std::process::ExitCode;

use clap::Parser;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("tpmd-ssh-agent: {message}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Some(key_file) = &cli.set_auth {
        return match set_auth::run(key_file, cli.socket.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    let settings = match config::Settings::load(&cli) {
        Ok(settings) => settings,
        Err(e) => return fail(e),
    };
    if !settings.foreground && !config::socket_activated() {
        return match background::start(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    if let Err(e) = logging::init(settings.log_file.as_deref()) {
        return fail(e);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            fail(e)
        }
    }
}
