//! tpmd-ssh-agent: an ssh-agent whose keys live in the TPM, through tpmd.

mod add;
mod add_request;
mod agent;
mod askpass;
mod background;
mod cert;
mod certificate;
mod cli;
mod config;
mod connection;
mod constraints;
mod destination;
mod error;
mod extension;
mod keys;
mod lock;
mod logging;
mod memory;
mod pattern;
mod pkcs11;
mod run;
mod save;
mod set_auth;
mod shell;
mod sign;
mod smartcard;
mod socket;
mod tpmd;
mod upstream;
mod wire;

use std::process::ExitCode;

use clap::Parser;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("tpmd-ssh-agent: {message}");
    ExitCode::FAILURE
}

/// `--exit-with-parent PID`: SIGTERM (a clean stop) when the process that started the
/// agent for a command ends; if it already has, stop now.
fn exit_with_parent(pid: i32) -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| format!("cannot follow the parent process: {e}"))?;
    if nix::unistd::getppid().as_raw() != pid {
        return Err("the command the agent was started for has already ended".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if cli.pkcs11_helper {
        return match pkcs11::run_helper() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("PKCS#11 helper: {e}")),
        };
    }
    if cli.kill {
        return match shell::kill_agent(&cli) {
            Ok(lines) => {
                println!("{lines}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    if let Some(key_file) = &cli.set_auth {
        return match set_auth::run(key_file, cli.socket.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    if let Some(pid) = cli.exit_with_parent {
        if let Err(e) = exit_with_parent(pid) {
            return fail(e);
        }
    }
    let settings = match config::Settings::load(&cli) {
        Ok(settings) => settings,
        Err(e) => return fail(e),
    };
    if !settings.foreground && !config::socket_activated() {
        return match background::start(&settings, &cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    if !cli.command.is_empty() {
        return fail("a command to run cannot be combined with -D or -d");
    }
    if let Err(e) = logging::init(settings.log_file.as_deref(), settings.debug) {
        return fail(e);
    }
    memory::harden_process();
    // The agent only relays: one thread does it without the cross-thread wake-ups a
    // multi-threaded runtime adds to every request (a client's read, tpmd's answer).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run::run(settings, &cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            fail(e)
        }
    }
}
