//! The command line of `tpmd-simulator`. Also compiled into packaging/docgen, which
//! writes the man page and shell completions from it: keep it to std and clap.

use std::path::PathBuf;

use clap::Parser;

/// Run a swtpm TPM simulator for tpmd on 127.0.0.1.
///
/// Once ready, prints `TPMD_TRANSPORT=swtpm:host=127.0.0.1,port=P` on stdout; stops
/// swtpm on SIGINT or SIGTERM. With --kernel-rm or --latency, a proxy stands in front
/// of swtpm: TPMD_TRANSPORT is then its unix socket (`swtpm:path=...`, or
/// `tpmrm:path=...` with --kernel-rm), and stdout also gives a TCTI for tpm2-tools and
/// tss-esapi (`TPMD_MSSIM_TCTI=mssim:...`) and the proxy's swtpm-protocol TCP port
/// (`TPMD_TCP_TRANSPORT=swtpm:host=...,port=Q`).
///
/// With --private, nothing listens on TCP: TPMD_TRANSPORT is a unix socket only your
/// user can reach, and swtpm exits with tpmd-simulator, even after `kill -9`.
#[derive(Debug, Parser)]
#[command(name = "tpmd-simulator", version)]
pub struct Args {
    /// Directory for the TPM state (kept across runs). Default: a temporary directory
    /// removed on exit.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Data port P; the control channel uses P+1. Default: a free pair.
    #[arg(long, value_name = "P", conflicts_with = "private")]
    pub port: Option<u16>,
    /// Reachable by your user only (unix sockets of mode 0600 in a 0700 directory, no
    /// TCP), and swtpm exits when tpmd-simulator does, however it ends: what
    /// `tpmd --simulator` runs.
    #[arg(long)]
    pub private: bool,
    /// Emulate a TPM 1.2 (well-known owner and SRK secrets) instead of a TPM 2.0.
    #[arg(long)]
    pub tpm12: bool,
    /// Do not create the SRK at 0x81000001 (TPM 2.0) or take ownership (TPM 1.2).
    #[arg(long)]
    pub no_provision: bool,
    /// Model the kernel resource manager: each connection to the proxy is one open of
    /// /dev/tpmrm0 (TPM 2.0 only).
    #[arg(long)]
    pub kernel_rm: bool,
    /// Delay each command like a real TPM: a profile file (TOML), or a built-in
    /// profile: `discrete` or `firmware`.
    #[arg(long, value_name = "PROFILE")]
    pub latency: Option<String>,
}
