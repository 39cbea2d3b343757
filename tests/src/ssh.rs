//! Harness pieces for the ssh-agent tests: tpmd-ssh-agent as a child process, sshd on
//! 127.0.0.1 with a throwaway host key, and the OpenSSH clients pointed at the agent.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{binary, TestEnv};

fn wait_for_socket(path: &Path, child: &mut Child, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("{} never appeared", path.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// tpmd-ssh-agent in the foreground on a socket in a temporary directory, talking to the
/// test's tpmd, with HOME (so ~/.ssh) inside that directory.
pub struct AgentProcess {
    child: Child,
    pub socket: PathBuf,
    pub home: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl AgentProcess {
    /// Starts the agent for `env` with extra arguments and environment.
    pub fn start(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> AgentProcess {
        let dir = tempfile::Builder::new()
            .prefix("tpmd-agent-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap_or_else(|e| panic!("home: {e}"));
        let socket = dir.path().join("agent").join("ssh-agent.sock");
        let log = dir.path().join("agent.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log: {e}"));
        let mut command = Command::new(binary("tpmd-ssh-agent"));
        command
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .args(args)
            .env("TPMD_BUS_ADDRESS", env.bus.address())
            .env_remove("TPMD_SOCKET")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("TPMD_SSH_AGENT_LOG", "debug")
            .env_remove("SSH_ASKPASS")
            // No real askpass dialog from a test, whatever the developer's session has.
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("LISTEN_FDS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in vars {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (run `cargo build -p tpmd-ssh-agent` first)",
                binary("tpmd-ssh-agent").display()
            )
        });
        if let Err(e) = wait_for_socket(&socket, &mut child, &log) {
            let _ = child.kill();
            panic!("tpmd-ssh-agent did not start: {e}");
        }
        AgentProcess {
            child,
            socket,
            home,
            log,
            _dir: dir,
        }
    }

    pub fn ssh_dir(&self) -> PathBuf {
        self.home.join(".ssh")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// An OpenSSH client command (ssh-add, ssh, ssh-keygen) using this agent.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("SSH_AUTH_SOCK", &self.socket)
            .env("HOME", &self.home)
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY")
            .stdin(Stdio::null());
        command
    }

    pub fn ssh_add(&self, args: &[&str]) -> Output {
        self.command("ssh-add")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ssh-add: {e}"))
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; sshd binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// sshd on 127.0.0.1 as the current user, with a throwaway host key, accepting the
/// public keys written to `authorized_keys` and only the given signature algorithms.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// The host's public key (OpenSSH format).
    pub host_key_pub: PathBuf,
    pub authorized_keys: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sshd {
    pub fn start(accepted_algorithms: &str, authorized: &str) -> Sshd {
        Self::start_with(accepted_algorithms, authorized, "")
    }

    /// As [`Sshd::start`], with more sshd_config lines.
    pub fn start_with(accepted_algorithms: &str, authorized: &str, extra_config: &str) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("tpmd-sshd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let host_key = dir.path().join("host_ed25519");
        crate::tools::run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                &host_key.to_string_lossy(),
            ],
        );
        let host_keys = format!("HostKey {}\n", host_key.display());
        Self::launch(
            dir,
            &host_keys,
            host_key.with_extension("pub"),
            accepted_algorithms,
            authorized,
            extra_config,
        )
    }

    /// sshd whose host keys are given by `host_keys_config` (HostKey and HostKeyAgent
    /// lines), the first of them being `host_key_pub`.
    pub fn start_with_host_keys(
        host_keys_config: &str,
        host_key_pub: PathBuf,
        accepted_algorithms: &str,
        authorized: &str,
    ) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("tpmd-sshd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        Self::launch(
            dir,
            host_keys_config,
            host_key_pub,
            accepted_algorithms,
            authorized,
            "",
        )
    }

    fn launch(
        dir: tempfile::TempDir,
        host_keys_config: &str,
        host_key_pub: PathBuf,
        accepted_algorithms: &str,
        authorized: &str,
        extra_config: &str,
    ) -> Sshd {
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, authorized).unwrap_or_else(|e| panic!("{e}"));
        // sshd's privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let config = dir.path().join("sshd_config");
        let log = dir.path().join("sshd.log");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\n{host_keys_config}AuthorizedKeysFile {}\n\
                     StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                     PubkeyAcceptedAlgorithms {accepted_algorithms}\nPermitRootLogin yes\n\
                     PidFile none\nLogLevel DEBUG1\n{extra_config}\n",
                    authorized_keys.display()
                ),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("/usr/sbin/sshd: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd {
                        child,
                        port,
                        host_key_pub,
                        authorized_keys,
                        log,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    last_error = std::fs::read_to_string(&log).unwrap_or_default();
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    last_error = "sshd did not listen".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("sshd did not start: {last_error}");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ssh ... user@127.0.0.1 true` through the agent, with extra `-o` options.
    pub fn ssh_true(&self, agent: &AgentProcess, options: &[&str]) -> Output {
        self.ssh(agent, options, "true")
    }

    /// `ssh ... user@127.0.0.1 REMOTE_COMMAND` through the agent, with extra `-o` options
    /// (`ForwardAgent=yes` to give the remote command the agent).
    pub fn ssh(&self, agent: &AgentProcess, options: &[&str], remote_command: &str) -> Output {
        let user = login_user();
        let mut command = agent.command("ssh");
        command.args([
            "-F",
            "/dev/null",
            "-o",
            "IdentitiesOnly=no",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]);
        command
            .arg("-o")
            .arg(format!("IdentityAgent={}", agent.socket.display()));
        for option in options {
            command.arg("-o").arg(option);
        }
        command
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{user}@127.0.0.1"))
            .arg(remote_command);
        command.output().unwrap_or_else(|e| panic!("ssh: {e}"))
    }
}

/// The name the tests log in to sshd as: the current user.
pub fn login_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes a TPM key in `dir` with tpm-keyctl (`key_type` as `tpm-keyctl generate -t`),
/// its `.pub` carrying `comment`; returns the key file's path.
pub fn generate_tpm_key(
    env: &TestEnv,
    dir: &Path,
    name: &str,
    key_type: &str,
    comment: &str,
) -> PathBuf {
    let path = dir.join(name);
    let out = env.keyctl(&[
        "generate",
        "-t",
        key_type,
        "-o",
        &path.to_string_lossy(),
        "-C",
        comment,
    ]);
    crate::tools::ok(&out);
    path
}

/// `ssh-keygen -Y sign` of `message` with the agent key whose public key is in `pubkey`,
/// then `-Y verify` against an allowed-signers file naming it. Returns (sign, verify).
pub fn sign_and_verify(
    agent: &AgentProcess,
    pubkey: &Path,
    message: &Path,
) -> (Output, Option<Output>) {
    let sign = agent
        .command("ssh-keygen")
        .args(["-Y", "sign", "-n", "file", "-f"])
        .arg(pubkey)
        .arg(message)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
    if !sign.status.success() {
        return (sign, None);
    }
    let public = std::fs::read_to_string(pubkey).unwrap_or_else(|e| panic!("{e}"));
    let allowed = message.with_extension("allowed");
    std::fs::write(&allowed, format!("signer@test {}", public.trim()))
        .unwrap_or_else(|e| panic!("{e}"));
    let signature = PathBuf::from(format!("{}.sig", message.display()));
    let message_file = std::fs::File::open(message).unwrap_or_else(|e| panic!("{e}"));
    let verify = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "file", "-I", "signer@test", "-f"])
        .arg(&allowed)
        .arg("-s")
        .arg(&signature)
        .stdin(message_file)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
    let _ = std::fs::remove_file(&signature);
    (sign, Some(verify))
}

/// OpenSSH's own ssh-agent on a socket in `dir`, as an upstream for tpmd-ssh-agent;
/// killed when dropped.
pub struct OpensshAgent {
    child: Child,
    pub socket: PathBuf,
}

impl Drop for OpensshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_openssh_agent(dir: &Path) -> OpensshAgent {
    let socket = dir.join("openssh-agent.sock");
    let child = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ssh-agent: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "ssh-agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    OpensshAgent { child, socket }
}
