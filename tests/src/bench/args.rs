//! The benchmarks' command lines: `--name value` pairs and flags, nothing more.

/// `--ops N` from the command line: signatures per row, `default` when absent.
pub fn ops_arg(default: usize) -> usize {
    usize_arg("--ops", default)
}

/// `NAME N` from the command line, `default` when absent.
pub fn usize_arg(name: &str, default: usize) -> usize {
    string_arg(name)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `NAME VALUE` from the command line.
pub fn string_arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// Whether `NAME` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}
