use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = tpmd::cli::Args::parse();
    let to_journald = tpmd::logging::init(&args.log_level);
    tpmd::crash::install(to_journald);
    match tpmd::daemon::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if to_journald {
                tracing::error!("{e}");
            }
            eprintln!("tpmd: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
