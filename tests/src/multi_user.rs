//! One tpmd shared by real local users, as on a login server: a TPM 2.0 simulator with
//! chosen dictionary-attack parameters, a private bus with a system bus's rules and the
//! project's D-Bus policy file, tpmd (as root) on both, and users made for the test whose
//! clients (`tpmd-load`, `tpm-keyctl`) run under their own uids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use tpmd_api::dbus::GenerateOptions;
use tpmd_api::Daemon1Proxy;
use tpmd_simulator::{Family, Simulator};

use crate::users::TestUser;
use crate::{binary, PrivateBus, TpmdProcess};

/// Dictionary-attack parameters for the simulator.
#[derive(Debug, Clone, Copy)]
pub struct DaParameters {
    pub max_tries: u32,
    pub recovery_time_s: u32,
    pub lockout_recovery_s: u32,
}

pub struct SharedTpm {
    pub tpmd: TpmdProcess,
    pub bus: PrivateBus,
    pub sim: Simulator,
    /// Root's: logs and tpmd's state.
    pub dir: tempfile::TempDir,
    /// World-traversable parent of the users' own directories.
    pub users_dir: tempfile::TempDir,
}

impl SharedTpm {
    /// tpmd with `args` and `env` on a fresh TPM 2.0 simulator set to `da`.
    pub async fn start(da: DaParameters, args: &[&str], env: &[(&str, &str)]) -> SharedTpm {
        let sim = Simulator::start_in_tempdir(Family::Tpm2, None, true)
            .unwrap_or_else(|e| panic!("simulator: {e}"));
        sim.set_dictionary_attack_parameters(
            da.max_tries,
            da.recovery_time_s,
            da.lockout_recovery_s,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self::start_on(sim, args, env).await
    }

    /// tpmd on a fresh TPM 1.2 simulator (owned, well-known secrets), whose
    /// dictionary-attack parameters are the vendor's.
    pub async fn start_tpm12(args: &[&str]) -> SharedTpm {
        let sim = Simulator::start_in_tempdir(Family::Tpm12, None, true)
            .unwrap_or_else(|e| panic!("simulator: {e}"));
        let mut all_args = vec!["--tpm12"];
        all_args.extend_from_slice(args);
        Self::start_on(sim, &all_args, &[]).await
    }

    async fn start_on(sim: Simulator, args: &[&str], env: &[(&str, &str)]) -> SharedTpm {
        use std::os::unix::fs::PermissionsExt;
        let bus = PrivateBus::start_system_like().unwrap_or_else(|e| panic!("dbus-daemon: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("tpmd-shared-")
            .tempdir()
            .unwrap();
        let users_dir = tempfile::Builder::new()
            .prefix("tpmd-users-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(users_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let transport = sim.transport().to_string();
        let mut all_args = vec!["--tpm", transport.as_str()];
        all_args.extend_from_slice(args);
        let tpmd = TpmdProcess::start_with_env(&bus, &all_args, env, dir.path().join("tpmd.log"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        SharedTpm {
            tpmd,
            bus,
            sim,
            dir,
            users_dir,
        }
    }

    /// Starts tpmd again (after a stop or a kill) with the same state directory.
    pub async fn restart(&mut self, args: &[&str]) {
        let transport = self.sim.transport().to_string();
        let mut all_args = vec!["--tpm", transport.as_str()];
        all_args.extend_from_slice(args);
        self.tpmd = TpmdProcess::start_with_args(
            &self.bus,
            &all_args,
            self.dir.path().join("tpmd-restarted.log"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn user(&self, tag: &str) -> TestUser {
        TestUser::create(tag, self.users_dir.path()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A D-Bus connection as root (the test itself).
    pub async fn root_proxy(&self) -> Daemon1Proxy<'static> {
        let conn = self.bus.connect().await.unwrap();
        Daemon1Proxy::new(&conn).await.unwrap()
    }

    /// A key made by tpmd (ECC P-256; RSA-2048 on a TPM 1.2), written into `user`'s
    /// directory as `name`; with an auth value, that value is written beside it as
    /// `name.auth`.
    pub async fn key_for(&self, user: &TestUser, name: &str, auth: &[u8]) -> PathBuf {
        let key_type = match self.sim.family() {
            Family::Tpm2 => "ecc-p256",
            Family::Tpm12 => "rsa2048",
        };
        let file = self
            .root_proxy()
            .await
            .generate(key_type, auth, GenerateOptions::default())
            .await
            .unwrap();
        if !auth.is_empty() {
            user.write(&format!("{name}.auth"), auth);
        }
        user.write(name, &file)
    }

    /// `tpmd-load` as `user`, with `args`, its output piped.
    pub fn load(&self, user: &TestUser, args: &[&str]) -> Child {
        user.command(binary("tpmd-load"))
            .args(args)
            .env(tpmd_api::dbus::ADDRESS_ENV, self.bus.address())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("tpmd-load: {e} (cargo build --workspace first)"))
    }

    /// `tpm-keyctl` as `user`.
    pub fn keyctl(&self, user: &TestUser, args: &[&str]) -> Output {
        self.keyctl_command(user, args).output().unwrap()
    }

    pub fn keyctl_command(&self, user: &TestUser, args: &[&str]) -> Command {
        let mut cmd = user.command(binary("tpm-keyctl"));
        cmd.args(args)
            .env(tpmd_api::dbus::ADDRESS_ENV, self.bus.address())
            .stdin(Stdio::null());
        cmd
    }

    pub fn log_path(&self) -> &Path {
        self.dir.path()
    }
}

/// What `tpmd-load` printed, for one key.
#[derive(Debug)]
pub struct LoadReport {
    pub json: serde_json::Value,
}

impl LoadReport {
    /// Waits for a `tpmd-load` and parses its report (`key` is "main" or "interleaved").
    pub fn collect(child: Child) -> (LoadReport, LoadReport) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "tpmd-load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (
            LoadReport {
                json: json["main"].clone(),
            },
            LoadReport {
                json: json["interleaved"].clone(),
            },
        )
    }

    pub fn count(&self, kind: &str) -> u64 {
        self.json["counts"][kind].as_u64().unwrap_or(0)
    }

    /// Calls of any kind but `kind`.
    pub fn others_than(&self, kind: &str) -> u64 {
        self.json["counts"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() != kind)
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    pub fn message(&self, kind: &str) -> String {
        self.json["messages"][kind]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn latency_us(&self, quantile: &str) -> Option<u64> {
        self.json["latency-us"][quantile].as_u64()
    }
}
