//! Logs go to journald when it is there, to stderr otherwise.

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// Sets up logging; returns true when logs go to journald (not to stderr).
pub fn init(filter: &str) -> bool {
    // tss-esapi and libtss2 log every failed command on their own; tpmd reports the
    // failure once, in its own words.
    let filter = if filter.contains("tss_esapi") {
        filter.to_string()
    } else {
        format!("{filter},tss_esapi=off")
    };
    if std::env::var_os("TSS2_LOG").is_none() {
        // Read by libtss2 when its first context is made, which is after this.
        std::env::set_var("TSS2_LOG", "all+NONE");
    }
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    if under_journald {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(journald)
                .init();
            return true;
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    false
}
