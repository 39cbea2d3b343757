//! `tpmd --simulator`, the real binary on a private bus: its swtpm cannot outlive it
//! (kill -9 included) and an immediate restart serves the keys wrapped before; only its
//! user can reach the simulator; if swtpm dies, tpmd ends too; `--kernel-rm` and
//! `--latency` serve signatures through the kernel resource manager model. And a
//! user's own swtpm on a unix socket, `--tpm swtpm:path=...`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tpmd_tests::tools::{fails_with, ok, openssl_genkey, openssl_verify};
use tpmd_tests::{binary, PrivateBus, TpmdProcess};

/// tpmd's exit status when its simulator dies under it.
const EXIT_SIMULATOR_GONE: i32 = 69;

/// tpmd --simulator on a private bus, with its state and files in a temporary directory.
struct SimulatedTpmd {
    bus: PrivateBus,
    dir: tempfile::TempDir,
    tpmd: Option<TpmdProcess>,
    starts: u32,
}

impl SimulatedTpmd {
    async fn start(extra: &[&str]) -> SimulatedTpmd {
        let mut env = SimulatedTpmd {
            bus: PrivateBus::start().unwrap(),
            dir: tempfile::tempdir().unwrap(),
            tpmd: None,
            starts: 0,
        };
        env.restart(extra).await.unwrap();
        env
    }

    /// Starts tpmd (again) on the same simulator state.
    async fn restart(&mut self, extra: &[&str]) -> Result<(), String> {
        self.starts += 1;
        let state = self.path("state").to_string_lossy().into_owned();
        let mut args = vec!["--simulator", "--simulator-state", state.as_str()];
        args.extend_from_slice(extra);
        let log = self.path(&format!("tpmd-{}.log", self.starts));
        self.tpmd = Some(TpmdProcess::start_with_args(&self.bus, &args, log).await?);
        Ok(())
    }

    fn tpmd(&mut self) -> &mut TpmdProcess {
        self.tpmd.as_mut().expect("tpmd runs")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn keyctl(&self, args: &[&str]) -> Output {
        Command::new(binary("tpm-keyctl"))
            .args(args)
            .env("TPMD_BUS_ADDRESS", self.bus.address())
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// The swtpm tpmd started.
    fn swtpm(&mut self) -> u32 {
        let tpmd = self.tpmd().pid();
        child_named(tpmd, "swtpm").unwrap_or_else(|| panic!("tpmd {tpmd} has no swtpm child"))
    }

    /// The transport `tpm-keyctl info` reports.
    fn transport(&self) -> String {
        let info: serde_json::Value =
            serde_json::from_str(&ok(&self.keyctl(&["--json", "info"]))).unwrap();
        info["transport"].as_str().unwrap().to_string()
    }

    /// Signs `message` with `key` into `sig` and has openssl check it.
    fn sign_and_verify(&self, key: &str, sig: &str) {
        fs::write(self.path("message"), "the simulator's lifecycle").unwrap();
        ok(&self.keyctl(&["sign", "-k", key, "-i", "message", "-o", sig]));
        let public = ok(&self.keyctl(&["pubkey", key]));
        fs::write(self.path("public.pem"), public).unwrap();
        assert!(
            openssl_verify(
                &self.path("public.pem"),
                &self.path("message"),
                &self.path(sig),
                "sha256",
                &[]
            ),
            "openssl rejects the signature in {sig}"
        );
    }
}

/// The child of `parent` whose command name is `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        let comm = head.split_once(" (")?.1;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && comm == name).then_some(pid)
    })
}

/// Whether `pid` has exited: gone, or a zombie nobody reaped yet.
fn exited(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Waits until `pid` has exited, for at most a few seconds.
fn wait_exited(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if exited(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Inodes of the sockets process `pid` holds.
fn sockets_of(pid: u32) -> BTreeSet<u64> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| {
            let target = fs::read_link(fd.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Inodes of every TCP socket on the machine.
fn tcp_sockets() -> BTreeSet<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|table| {
            fs::read_to_string(table)
                .unwrap()
                .lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().nth(9)?.parse().ok())
                .collect::<Vec<u64>>()
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    path.symlink_metadata().unwrap().permissions().mode() & 0o777
}

/// A system user made for one test, removed when dropped.
struct OtherUser {
    name: String,
}

impl OtherUser {
    fn create() -> OtherUser {
        let name = format!("tpmdsim{}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        OtherUser { name }
    }

    /// Runs `program` as this user, without root's groups.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("setpriv")
            .arg(format!("--reuid={}", self.name))
            .arg(format!("--regid={}", self.name))
            .args(["--clear-groups", "--", program])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// kill -9 of tpmd, then an immediate restart on the same state: the old swtpm is gone,
/// the new tpmd serves a key wrapped before the kill.
async fn kill_9_and_restart(extra: &[&str], key_args: (&str, &[&str])) {
    let mut env = SimulatedTpmd::start(extra).await;
    let first_swtpm = env.swtpm();
    openssl_genkey(&env.path("k.pem"), key_args.0, key_args.1);
    ok(&env.keyctl(&["wrap", "k.pem"]));
    env.sign_and_verify("k.pem.tpm", "before.sig");

    let old_tpmd = env.tpmd().pid();
    env.tpmd().kill();
    assert!(exited(old_tpmd));
    // At once: the old swtpm may still be on its way out, holding the state's lock.
    env.restart(extra)
        .await
        .unwrap_or_else(|e| panic!("restart right after kill -9: {e}"));
    assert!(
        wait_exited(first_swtpm),
        "swtpm {first_swtpm} outlived tpmd {old_tpmd}"
    );
    let second_swtpm = env.swtpm();
    assert_ne!(second_swtpm, first_swtpm);
    env.sign_and_verify("k.pem.tpm", "after.sig");

    // An orderly stop ends swtpm as well.
    let status = env.tpmd().stop().unwrap();
    assert!(status.success(), "{}", env.tpmd().log_text());
    assert!(
        wait_exited(second_swtpm),
        "swtpm {second_swtpm} outlived tpmd"
    );
}

#[tokio::test]
async fn kill_9_leaves_no_swtpm_and_a_restart_serves_keys_wrapped_before() {
    kill_9_and_restart(&[], ("EC", &["ec_paramgen_curve:P-256"])).await;
}

#[tokio::test]
async fn kill_9_leaves_no_swtpm_and_a_restart_serves_keys_wrapped_before_on_a_tpm12() {
    kill_9_and_restart(&["--tpm12"], ("RSA", &["rsa_keygen_bits:2048"])).await;
}

#[tokio::test]
async fn only_its_user_can_reach_the_simulator() {
    let mut env = SimulatedTpmd::start(&[]).await;
    let transport = env.transport();
    let socket = PathBuf::from(
        transport
            .strip_prefix("swtpm:path=")
            .unwrap_or_else(|| panic!("not a unix socket: {transport}")),
    );
    let dir = socket.parent().unwrap().to_path_buf();
    let ctrl = dir.join("ctrl.sock");
    assert!(dir.starts_with(env.path("state")), "{}", dir.display());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(&ctrl), 0o600);
    assert_eq!(mode(&env.path("state")), 0o700);

    // Nothing of the simulator is on TCP: neither swtpm nor tpmd's proxy holds a TCP
    // socket.
    let tcp = tcp_sockets();
    let swtpm = env.swtpm();
    for (who, pid) in [("swtpm", swtpm), ("tpmd", env.tpmd().pid())] {
        let sockets = sockets_of(pid);
        assert!(!sockets.is_empty());
        assert!(
            sockets.is_disjoint(&tcp),
            "{who} holds a TCP socket: {:?}",
            sockets.intersection(&tcp).collect::<Vec<_>>()
        );
    }

    // Its user connects (swtpm_ioctl -g asks the control channel for its
    // capabilities); another user is refused at connect, on both sockets.
    let paths = [ctrl.to_string_lossy(), socket.to_string_lossy()];
    ok(&Command::new("swtpm_ioctl")
        .args(["--unix", &paths[0], "-g"])
        .output()
        .unwrap());
    let other = OtherUser::create();
    for path in &paths {
        let out = other.run("swtpm_ioctl", &["--unix", path, "-g"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} reached {path}", other.name);
        assert!(stderr.contains("Permission denied"), "{path}: {stderr}");
    }
    // tpmd still serves.
    openssl_genkey(&env.path("k.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    ok(&env.keyctl(&["wrap", "k.pem"]));
    env.sign_and_verify("k.pem.tpm", "k.sig");
}

#[tokio::test]
async fn tpmd_ends_when_its_simulator_dies() {
    let mut env = SimulatedTpmd::start(&[]).await;
    let swtpm = env.swtpm();
    let tpmd = env.tpmd().pid();
    kill(Pid::from_raw(swtpm as i32), Signal::SIGKILL).unwrap();
    assert!(wait_exited(tpmd), "tpmd {tpmd} goes on without its TPM");
    let status = env.tpmd().stop().unwrap();
    assert_eq!(status.code(), Some(EXIT_SIMULATOR_GONE));
    let log = env.tpmd().log_text();
    assert!(
        log.contains("embedded TPM simulator") && log.contains("exited"),
        "{log}"
    );
}

#[tokio::test]
async fn kernel_rm_and_latency_serve_signatures() {
    // A fast profile of our own: the test checks that it is applied, not real speeds.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("quick.toml");
    fs::write(
        &profile,
        "name = \"quick\"\ndefault = 0.1\n[commands]\nSign = { median_ms = 1.0 }\n",
    )
    .unwrap();
    let profile = profile.to_string_lossy().into_owned();
    let env = SimulatedTpmd::start(&["--kernel-rm", "--latency", &profile]).await;
    let transport = env.transport();
    assert!(transport.starts_with("tpmrm:path="), "{transport}");
    for (name, alg, opts) in [
        ("ec.pem", "EC", &["ec_paramgen_curve:P-256"][..]),
        ("rsa.pem", "RSA", &["rsa_keygen_bits:2048"][..]),
    ] {
        openssl_genkey(&env.path(name), alg, opts);
        ok(&env.keyctl(&["wrap", name]));
    }
    for round in 0..2 {
        env.sign_and_verify("ec.pem.tpm", &format!("ec-{round}.sig"));
        env.sign_and_verify("rsa.pem.tpm", &format!("rsa-{round}.sig"));
    }
    let log = env.tpmd.as_ref().unwrap().log_text();
    let started = log
        .lines()
        .find(|line| line.contains("embedded TPM simulator started"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        started.contains("latency") && started.contains("quick"),
        "{started}"
    );
}

#[tokio::test]
async fn bad_simulator_options_are_one_clear_line() {
    let bus = PrivateBus::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_string_lossy();
    let tpmd = |args: &[&str]| {
        Command::new(binary("tpmd"))
            .arg("--address")
            .arg(bus.address())
            .args(args)
            .env("TPMD_LOG", "off")
            .output()
            .unwrap()
    };
    fails_with(
        &tpmd(&[
            "--simulator",
            "--simulator-state",
            &state,
            "--latency",
            "no-such-profile",
        ]),
        "no-such-profile",
    );
    fails_with(
        &tpmd(&[
            "--simulator",
            "--simulator-state",
            &state,
            "--tpm12",
            "--kernel-rm",
        ]),
        "needs a TPM 2.0",
    );
    let out = tpmd(&["--kernel-rm"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--simulator"), "{stderr}");
}

/// A swtpm the test starts itself, as a user would, killed when dropped.
struct OwnSwtpm(std::process::Child);

impl Drop for OwnSwtpm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_users_own_swtpm_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let socket = dir.path().join("swtpm.sock");
    let ctrl = dir.path().join("swtpm.ctrl");
    // Dropped last, after tpmd.
    let _swtpm = OwnSwtpm(
        Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let transport = format!("swtpm:path={}", socket.display());
    let bus = PrivateBus::start().unwrap();
    let _tpmd = TpmdProcess::start(&bus, &transport, &[], dir.path().join("tpmd.log"))
        .await
        .unwrap();
    let keyctl = |args: &[&str]| {
        Command::new(binary("tpm-keyctl"))
            .args(args)
            .env("TPMD_BUS_ADDRESS", bus.address())
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // A fresh swtpm has no SRK yet.
    ok(&keyctl(&["srk", "create"]));
    let info: serde_json::Value = serde_json::from_str(&ok(&keyctl(&["--json", "info"]))).unwrap();
    assert_eq!(info["transport"], transport.as_str());
    openssl_genkey(
        &dir.path().join("k.pem"),
        "EC",
        &["ec_paramgen_curve:P-256"],
    );
    ok(&keyctl(&["wrap", "k.pem"]));
    fs::write(dir.path().join("m"), "m").unwrap();
    ok(&keyctl(&[
        "sign",
        "-k",
        "k.pem.tpm",
        "-i",
        "m",
        "-o",
        "m.sig",
    ]));
    fs::write(
        dir.path().join("k.pub"),
        ok(&keyctl(&["pubkey", "k.pem.tpm"])),
    )
    .unwrap();
    assert!(openssl_verify(
        &dir.path().join("k.pub"),
        &dir.path().join("m"),
        &dir.path().join("m.sig"),
        "sha256",
        &[]
    ));
}
