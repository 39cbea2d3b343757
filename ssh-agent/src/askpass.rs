//! Asking the user through `SSH_ASKPASS`, as ssh-agent does: a yes/no confirmation
//! (`SSH_ASKPASS_PROMPT=confirm`, exit status 0 means yes) and the entry of a key's
//! auth value (PIN).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tracing::warn;
use zeroize::Zeroizing;

/// A user who does not answer within this time is taken as a no.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Debian's default, used as OpenSSH does when SSH_ASKPASS is unset and there is a display.
const DEFAULT_ASKPASS: &str = "/usr/bin/ssh-askpass";

fn program() -> Option<String> {
    if let Some(program) = std::env::var("SSH_ASKPASS").ok().filter(|p| !p.is_empty()) {
        return Some(program);
    }
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    (has_display && std::path::Path::new(DEFAULT_ASKPASS).exists())
        .then(|| DEFAULT_ASKPASS.to_string())
}

async fn run(prompt: &str, confirm: bool) -> Option<std::process::Output> {
    let Some(program) = program() else {
        warn!("SSH_ASKPASS is not set in the agent's environment (and there is no display for {DEFAULT_ASKPASS}), so the user cannot be asked; treating it as a refusal");
        return None;
    };
    let mut command = Command::new(&program);
    command
        .arg(prompt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if confirm {
        command.env("SSH_ASKPASS_PROMPT", "confirm");
    } else {
        command.env_remove("SSH_ASKPASS_PROMPT");
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => Some(output),
        Ok(Err(e)) => {
            warn!("cannot run SSH_ASKPASS program {program}: {e}");
            None
        }
        Err(_) => {
            warn!("no answer from SSH_ASKPASS within {ANSWER_TIMEOUT:?}; taken as a refusal");
            None
        }
    }
}

/// Whether the user allows the use of a key.
pub async fn confirm(prompt: &str) -> bool {
    run(prompt, true)
        .await
        .is_some_and(|output| output.status.success())
}

/// The auth value (PIN) the user enters, without the trailing newline; None if they
/// cancel.
pub async fn ask_secret(prompt: &str) -> Option<Zeroizing<Vec<u8>>> {
    let output = run(prompt, false).await?;
    let mut secret = Zeroizing::new(output.stdout);
    if !output.status.success() {
        return None;
    }
    while matches!(secret.last(), Some(b'\n' | b'\r')) {
        secret.pop();
    }
    Some(secret)
}
