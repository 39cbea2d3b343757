use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = tpmd::cli::Args::parse();
    tpmd::logging::init(&args.log_level);
    match tpmd::daemon::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tpmd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
