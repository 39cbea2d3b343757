//! Without -D: start a copy of ourselves with -D in its own process group, wait until it
//! listens, and print the environment for `eval`, as ssh-agent does; or, given a command,
//! run that command with the agent's environment, the agent ending when it ends.
//! (Re-running the binary rather than forking keeps the process free of unsafe code.)

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Cli;
use crate::config::Settings;
use crate::error::StartError;

const START_TIMEOUT: Duration = Duration::from_secs(10);

fn log_path(settings: &Settings) -> PathBuf {
    settings
        .log_file
        .clone()
        .unwrap_or_else(|| settings.socket.with_file_name("ssh-agent.log"))
}

pub fn start(settings: &Settings, cli: &Cli) -> Result<(), StartError> {
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
    // Our own options, without the command to run.
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let options = &args[..args.len().saturating_sub(cli.command.len())];
    let mut command = Command::new(exe);
    command.arg("-D").args(options);
    if cli.socket.is_none() {
        command.arg("-a").arg(socket);
    }
    if settings.log_file.is_none() {
        command.arg("--log-file").arg(&log);
    }
    if !cli.command.is_empty() {
        command
            .arg("--exit-with-parent")
            .arg(std::process::id().to_string());
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
    let Some((program, program_args)) = cli.command.split_first() else {
        println!("{}", crate::shell::environment(cli, socket, child.id()));
        return Ok(());
    };
    let error = Command::new(program)
        .args(program_args)
        .env("SSH_AUTH_SOCK", socket)
        .env("SSH_AGENT_PID", child.id().to_string())
        .exec();
    Err(StartError::Other(format!(
        "cannot run {}: {error}",
        program.to_string_lossy()
    )))
}
