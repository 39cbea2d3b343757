//! What ssh-agent prints for `eval`: the environment in sh or csh syntax (`-s`, `-c`, or
//! from $SHELL), and `-k`, which stops the agent named by $SSH_AGENT_PID.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cli::Cli;

fn csh(cli: &Cli) -> bool {
    cli.csh || (!cli.sh && std::env::var("SHELL").is_ok_and(|shell| shell.ends_with("csh")))
}

/// The lines that set SSH_AUTH_SOCK and SSH_AGENT_PID.
pub fn environment(cli: &Cli, socket: &Path, pid: u32) -> String {
    let socket = socket.display();
    if csh(cli) {
        format!(
            "setenv SSH_AUTH_SOCK {socket};\nsetenv SSH_AGENT_PID {pid};\necho Agent pid {pid};"
        )
    } else {
        format!(
            "SSH_AUTH_SOCK={socket}; export SSH_AUTH_SOCK;\nSSH_AGENT_PID={pid}; export SSH_AGENT_PID;\necho Agent pid {pid};"
        )
    }
}

/// `-k`: SIGTERM to $SSH_AGENT_PID, and the lines that unset the environment.
pub fn kill_agent(cli: &Cli) -> Result<String, String> {
    let pid = std::env::var("SSH_AGENT_PID")
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
        .ok_or("SSH_AGENT_PID is not set to a process id; cannot tell which agent to stop")?;
    kill(Pid::from_raw(pid), Signal::SIGTERM)
        .map_err(|e| format!("cannot stop the agent (pid {pid}): {e}"))?;
    Ok(if csh(cli) {
        format!("unsetenv SSH_AUTH_SOCK;\nunsetenv SSH_AGENT_PID;\necho Agent pid {pid} killed;")
    } else {
        format!("unset SSH_AUTH_SOCK;\nunset SSH_AGENT_PID;\necho Agent pid {pid} killed;")
    })
}
