//! tpmd as a child process on a private bus and a fresh simulator.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tpmd_api::Daemon1Proxy;
use tpmd_simulator::{Family, Simulator};

use crate::bus::PrivateBus;

/// Path of a workspace binary (tpmd, tpm-keyctl), next to the test executable's
/// target directory; `TPMD_BIN_DIR` overrides.
pub fn binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("TPMD_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // A test runs from target/<profile>/deps/, a binary such as tpmd-bench from
    // target/<profile>/; the workspace binaries are in target/<profile>/.
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

pub struct TpmdProcess {
    child: Child,
    log: PathBuf,
}

impl TpmdProcess {
    /// Starts tpmd on `bus` against the simulator and waits until it owns its name.
    pub async fn start(
        bus: &PrivateBus,
        transport: &str,
        extra: &[&str],
        log: PathBuf,
    ) -> Result<TpmdProcess, String> {
        let mut args = vec!["--tpm", transport];
        args.extend_from_slice(extra);
        Self::start_with_args(bus, &args, log).await
    }

    /// Starts tpmd on `bus` with exactly these arguments (plus the bus address).
    pub async fn start_with_args(
        bus: &PrivateBus,
        args: &[&str],
        log: PathBuf,
    ) -> Result<TpmdProcess, String> {
        Self::start_with_env(bus, args, &[], log).await
    }

    /// Like [`TpmdProcess::start_with_args`], with extra environment variables. Unless
    /// given, tpmd's state directory is `tpmd-state` beside the log, so tests do not share
    /// their dictionary-attack records and a restart with the same log directory keeps
    /// them.
    pub async fn start_with_env(
        bus: &PrivateBus,
        args: &[&str],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Result<TpmdProcess, String> {
        let state_dir = log.with_file_name("tpmd-state");
        // TPMD_TEST_LOG_DIR keeps the daemon's logs for a look after the test.
        let log = match std::env::var_os("TPMD_TEST_LOG_DIR") {
            Some(dir) => PathBuf::from(dir).join(format!(
                "tpmd-{}-{}",
                std::process::id(),
                log.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )),
            None => log,
        };
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(binary("tpmd"))
            .arg("--address")
            .arg(bus.address())
            .args(args)
            // Only `--socket` in `args` gives this tpmd a socket.
            .env_remove("TPMD_SOCKET")
            .env(
                "TPMD_LOG",
                std::env::var("TPMD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("TPMD_STATE_DIR", &state_dir)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (run `cargo build --workspace` first)",
                    binary("tpmd").display()
                )
            })?;
        let mut process = TpmdProcess { child, log };
        process.wait_ready(bus).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, bus: &PrivateBus) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let conn = bus.connect().await.map_err(|e| e.to_string())?;
        let dbus = zbus::fdo::DBusProxy::new(&conn)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let name = zbus::names::BusName::try_from(tpmd_api::dbus::BUS_NAME)
                .map_err(|e| e.to_string())?;
            if dbus.name_has_owner(name).await.unwrap_or(false) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("tpmd exited with {status}: {}", self.log_text()));
            }
            if Instant::now() > deadline {
                return Err(format!("tpmd did not come up: {}", self.log_text()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait: tpmd flushes what it loaded.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// Waits up to `timeout` for tpmd to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TpmdProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A fresh simulator with an SRK, a private bus and tpmd on both.
pub struct TestEnv {
    pub tpmd: TpmdProcess,
    pub bus: PrivateBus,
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> TestEnv {
        let sim = Simulator::start_temporary().unwrap_or_else(|e| panic!("simulator: {e}"));
        Self::start_on(sim, extra).await
    }

    /// tpmd on a fresh simulator of the given family, with its SRK (TPM 1.2: owner and SRK
    /// well-known, as `swtpm_setup --take-ownership` leaves them).
    pub async fn start_family(family: Family) -> TestEnv {
        let sim = Simulator::start_in_tempdir(family, None, true)
            .unwrap_or_else(|e| panic!("simulator: {e}"));
        Self::start_on(sim, &[]).await
    }

    /// tpmd's arguments for this simulator: a TPM 1.2 must be named as one.
    fn tpmd_args<'a>(sim: &Simulator, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = extra.to_vec();
        if sim.family() == Family::Tpm12 {
            args.push("--tpm12");
        }
        args
    }

    /// tpmd on a simulator the caller prepared (without an SRK, say).
    pub async fn start_on(sim: Simulator, extra: &[&str]) -> TestEnv {
        let bus = PrivateBus::start().unwrap_or_else(|e| panic!("dbus-daemon: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("tpmd-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let tpmd = TpmdProcess::start(
            &bus,
            &sim.transport().to_string(),
            &Self::tpmd_args(&sim, extra),
            dir.path().join("tpmd.log"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        TestEnv {
            tpmd,
            bus,
            sim,
            dir,
        }
    }

    pub async fn restart_tpmd(&mut self, extra: &[&str]) {
        self.tpmd.stop();
        self.tpmd = TpmdProcess::start(
            &self.bus,
            &self.sim.transport().to_string(),
            &Self::tpmd_args(&self.sim, extra),
            self.dir.path().join("tpmd-2.log"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    pub async fn proxy(&self) -> Daemon1Proxy<'static> {
        let conn = self
            .bus
            .connect()
            .await
            .unwrap_or_else(|e| panic!("bus: {e}"));
        Daemon1Proxy::new(&conn)
            .await
            .unwrap_or_else(|e| panic!("proxy: {e}"))
    }

    /// Runs tpm-keyctl against this tpmd.
    pub fn keyctl(&self, args: &[&str]) -> Output {
        self.keyctl_cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("tpm-keyctl: {e}"))
    }

    pub fn keyctl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("tpm-keyctl"));
        cmd.args(args)
            .env("TPMD_BUS_ADDRESS", self.bus.address())
            .env_remove("TPMD_SOCKET")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
