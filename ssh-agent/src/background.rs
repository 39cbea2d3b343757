//! Without -D: start a copy of ourselves with -D in its own process group, wait until it
//! listens, and print the line for `eval`, as ssh-agent does. (Re-running the binary
//! rather than forking keeps the process free of unsafe code.)

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::error::StartError;

const START_TIMEOUT: Duration = Duration::from_secs(10);

fn log_path(settings: &Settings) -> PathBuf {
    settings
        .log_file
        .clone()
        .unwrap_or_else(|| settings.socket.with_file_name("ssh-agent.log"))
}

pub fn start(settings: &Settings) -> Result<(), StartError> {
    let socket = &settings.socket;
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(StartError::Socket {
            path: socket.clone(),
            source: std::io::Error::other("another agent is listening on it; stop it or use -a"),
        });
    }
    let log = log_path(settings);
    if let Some(dir) = log.parent().filter(|d| !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StartError::Other(format!("cannot create {}: {e}", dir.display())))?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| StartError::Other(format!("cannot find my own binary: {e}")))?;
    let mut command = Command::new(exe);
    command.args(std::env::args_os().skip(1)).arg("-D");
    if settings.log_file.is_none() {
        command.arg("--log-file").arg(&log);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| StartError::Other(format!("cannot start the agent process: {e}")))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let last = std::fs::read_to_string(&log)
                .ok()
                .and_then(|t| t.lines().last().map(str::to_string))
                .unwrap_or_default();
            return Err(StartError::Other(format!(
                "the agent exited ({status}): {last} (log: {})",
                log.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            return Err(StartError::Other(format!(
                "the agent did not start listening within {START_TIMEOUT:?}; see {}",
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;", socket.display());
    println!("echo Agent pid {};", child.id());
    Ok(())
}
