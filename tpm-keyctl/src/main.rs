use clap::Parser;

mod binding;
mod cli;
mod commands;
mod error;
mod files;
mod output;
mod owner;
mod pcr_values;
mod prompt;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tpm-keyctl: error: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpm-keyctl: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
