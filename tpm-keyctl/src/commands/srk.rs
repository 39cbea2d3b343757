//! `srk status`, `srk create`, `srk public`.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::Tpmd;
use crate::cli::SrkCommand;
use crate::error::CliResult;
use crate::{files, output};

/// Shows a spinner on stderr while `work` runs: a real TPM takes tens of seconds to
/// make an RSA primary key.
async fn with_spinner<T>(message: &str, work: impl std::future::Future<Output = T>) -> T {
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let spinner = async {
        let frames = ['|', '/', '-', '\\'];
        for i in 0.. {
            if show {
                eprint!("\r{} {message}", frames[i % frames.len()]);
                let _ = std::io::stderr().flush();
            }
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    };
    let result = tokio::select! {
        r = work => r,
        _ = spinner => unreachable!("the spinner never ends"),
    };
    if show {
        eprint!("\r{}\r", " ".repeat(message.len() + 2));
    }
    result
}

pub async fn run(tpmd: &Tpmd, command: SrkCommand, json_out: bool) -> CliResult<()> {
    match command {
        SrkCommand::Status => {
            let info = tpmd.check(tpmd.proxy.get_info().await)?;
            let present = info.srk_present == Some(true);
            let handle = info.srk_handle.unwrap_or(tpmd_api::DEFAULT_SRK_HANDLE);
            output::print(
                json_out,
                &json!({"present": present, "handle": handle}),
                |_| {
                    if present {
                        format!("SRK present at {handle:#010x}")
                    } else {
                        format!("no SRK at {handle:#010x}: create it with `tpm-keyctl srk create`")
                    }
                },
            );
        }
        SrkCommand::Create => {
            let created = with_spinner(
                "creating the storage root key (a real TPM takes up to a minute)...",
                tpmd.proxy.create_srk(),
            )
            .await;
            let created = tpmd.check(created)?;
            output::print(json_out, &json!({"created": created}), |_| {
                if created {
                    "created the SRK at 0x81000001".into()
                } else {
                    "the SRK already exists at 0x81000001; nothing to do".into()
                }
            });
        }
        SrkCommand::Public { output: path } => {
            let public =
                tpmd.check(tpmd.proxy.parent_public(tpmd_api::DEFAULT_SRK_HANDLE).await)?;
            files::write_atomic(&path, &public, 0o644, true)?;
            output::print(json_out, &json!({"written": path}), |_| {
                format!(
                    "wrote the SRK public area to {}; on another machine: tpm-keyctl wrap --parent-pub {} KEY",
                    path.display(),
                    path.display()
                )
            });
        }
    }
    Ok(())
}
