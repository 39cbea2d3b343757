//! Log lines go to stderr, or to a file in the background. TPMD_SSH_AGENT_LOG sets the
//! level (an env-filter, default "info").

use std::path::Path;

use tracing_subscriber::EnvFilter;

/// `debug`: ssh-agent's -d, debug lines unless TPMD_SSH_AGENT_LOG says otherwise.
pub fn init(file: Option<&Path>, debug: bool) -> Result<(), String> {
    let default = if debug { "debug" } else { "info" };
    let filter =
        EnvFilter::try_from_env("TPMD_SSH_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
