//! C_Sign through libtpmd_pkcs11.so, RSA-2048 and ECDSA P-256, as ratios to the raw TPM
//! (tss-esapi TPM2_Sign with a password session) on the same simulator in the same run,
//! with the module reaching tpmd through the bus and peer to peer on tpmd's socket,
//! beside tpm2-pkcs11 (Debian libtpm2-pkcs11-1) on that simulator with tpmd stopped
//! (swtpm serves one client at a time).
//!
//! The floor and tpmd's rows take turns: in each of `--rounds` rounds tpmd stops, the
//! floor signs its share, tpmd starts again and every tpmd row signs its share (the
//! module loaded afresh), so that the simulator's drift hits them alike.
//!
//!   cargo build --release -p tpmd -p tpmd-pkcs11 -p tpmd-tests --bin pkcs11-bench
//!   target/release/pkcs11-bench [--ops N] [--rounds R]
//!
//! Not a test: it asserts nothing about time; it prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tpmd_tests::bench::{
    ops_arg, raw_tpm2_samples, usize_arg, RawScheme, RawSession, Samples, Stats, Table,
};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use sha2::{Digest as _, Sha256};
use tpmd_api::client::connection::connect_socket;
use tpmd_api::dbus::GenerateOptions;
use tpmd_simulator::Simulator;
use tpmd_tests::pkcs11::module_path;
use tpmd_tests::{PrivateBus, TpmdProcess};

const TPM2_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";

/// One key type measured.
#[derive(Clone, Copy)]
struct Kind {
    title: &'static str,
    /// tpmd's Generate key type.
    tpmd_type: &'static str,
    /// tpm2_ptool addkey --algorithm.
    ptool_type: &'static str,
    rsa: bool,
}

const KINDS: [Kind; 2] = [
    Kind {
        title: "RSA-2048 PKCS#1 v1.5 SHA-256",
        tpmd_type: "rsa2048",
        ptool_type: "rsa2048",
        rsa: true,
    },
    Kind {
        title: "ECDSA P-256 SHA-256",
        tpmd_type: "ecc-p256",
        ptool_type: "ecc256",
        rsa: false,
    },
];

impl Kind {
    fn mechanism(self) -> Mechanism<'static> {
        if self.rsa {
            Mechanism::Sha256RsaPkcs
        } else {
            Mechanism::EcdsaSha256
        }
    }

    fn raw_scheme(self) -> RawScheme {
        if self.rsa {
            RawScheme::RsaPkcs1
        } else {
            RawScheme::Ecdsa
        }
    }

    fn dbus_scheme(self) -> &'static str {
        if self.rsa {
            tpmd_api::dbus::scheme::RSA_PKCS1
        } else {
            tpmd_api::dbus::scheme::ECDSA
        }
    }
}

/// C_Sign (CKM_SHA256_RSA_PKCS or CKM_ECDSA_SHA256) from `threads` threads, each with
/// its own session.
fn c_sign(
    p: &Pkcs11,
    kind: Kind,
    label: &str,
    pin: Option<&str>,
    threads: usize,
    ops: usize,
    samples: &mut Samples,
) {
    let slot = p.get_slots_with_token().unwrap()[0];
    // Login is per application and lasts while a session is open.
    let login_session = p.open_ro_session(slot).unwrap();
    if let Some(pin) = pin {
        let _ = login_session.login(UserType::User, Some(&AuthPin::new(pin.into())));
    }
    let per_thread = ops / threads;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let p = p.clone();
            let label = label.to_string();
            std::thread::spawn(move || {
                let s = p.open_ro_session(slot).unwrap();
                let key = s
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(label.into_bytes()),
                    ])
                    .unwrap()[0];
                let mut latencies = Vec::with_capacity(per_thread);
                for i in 0..per_thread {
                    let data = (t * 1_000_000 + i).to_be_bytes();
                    let started = Instant::now();
                    s.sign(&kind.mechanism(), key, &data).unwrap();
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    let wall = start.elapsed();
    drop(login_session);
    samples.add(all, wall);
}

fn load(path: &Path) -> Pkcs11 {
    let p = Pkcs11::new(path).unwrap();
    p.initialize(CInitializeArgs::OsThreads).unwrap();
    p
}

fn ptool(store: &Path, tcti: &str, args: &[&str]) -> bool {
    Command::new("tpm2_ptool")
        .args(args)
        .arg(format!("--path={}", store.display()))
        .env("TPM2TOOLS_TCTI", tcti)
        .env("TPM2_PKCS11_TCTI", tcti)
        .output()
        .map(|o| {
            if !o.status.success() {
                eprintln!(
                    "tpm2_ptool {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            o.status.success()
        })
        .unwrap_or(false)
}

/// tpm2-abrmd on the private bus in front of the simulator: tpm2-pkcs11 and tpm2-tools
/// expect a resource manager (without one, tpm2_ptool fills swtpm's three object slots).
struct Abrmd(std::process::Child);

impl Drop for Abrmd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ABRMD_NAME: &str = "com.intel.tss2.TabrmdBench";

fn start_abrmd(sim: &Simulator, bus: &PrivateBus) -> Option<(Abrmd, String)> {
    let child = Command::new("tpm2-abrmd")
        .args(["--session", "--allow-root", "--flush-all"])
        .arg(format!("--dbus-name={ABRMD_NAME}"))
        .arg(format!("--tcti={}", sim.transport()))
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("tpm2-abrmd: {e}; skipping tpm2-pkcs11"))
        .ok()?;
    let abrmd = Abrmd(child);
    let tcti = format!("tabrmd:bus_type=session,bus_name={ABRMD_NAME}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ready = Command::new("tpm2_getcap")
            .args(["properties-fixed", "-T", &tcti])
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ready {
            return Some((abrmd, tcti));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("tpm2-abrmd did not come up; skipping tpm2-pkcs11");
    None
}

/// tpm2-pkcs11 on the same simulator (through tpm2-abrmd): a token and a key made by
/// tpm2_ptool.
fn tpm2_pkcs11_rows(
    sim: &Simulator,
    bus: &PrivateBus,
    dir: &Path,
    kind: Kind,
    ops: usize,
) -> Vec<(String, Stats)> {
    if !Path::new(TPM2_PKCS11).exists() {
        eprintln!("{TPM2_PKCS11} missing: install libtpm2-pkcs11-1; skipping tpm2-pkcs11");
        return Vec::new();
    }
    let Some((_abrmd, tcti)) = start_abrmd(sim, bus) else {
        return Vec::new();
    };
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let store = dir.join("tpm2-pkcs11");
    std::fs::create_dir_all(&store).unwrap();
    let made = ptool(&store, &tcti, &["init"])
        && ptool(
            &store,
            &tcti,
            &[
                "addtoken",
                "--pid=1",
                "--label=bench",
                "--sopin=sopin",
                "--userpin=1234",
            ],
        )
        && ptool(
            &store,
            &tcti,
            &[
                "addkey",
                &format!("--algorithm={}", kind.ptool_type),
                "--label=bench",
                "--userpin=1234",
                "--key-label=k",
            ],
        );
    if !made {
        return Vec::new();
    }
    std::env::set_var("TPM2_PKCS11_STORE", &store);
    std::env::set_var("TPM2_PKCS11_TCTI", &tcti);
    std::env::set_var("TSS2_LOG", "all+NONE");
    let p = load(Path::new(TPM2_PKCS11));
    c_sign(&p, kind, "k", Some("1234"), 1, 10, &mut Samples::default());
    let rows = [1, 16]
        .into_iter()
        .map(|threads| {
            let mut samples = Samples::default();
            c_sign(&p, kind, "k", Some("1234"), threads, ops, &mut samples);
            (
                format!("tpm2-pkcs11 C_Sign, {threads} thread(s)"),
                samples.stats(),
            )
        })
        .collect();
    drop(p);
    rows
}

/// tpmd's Sign called directly, one call at a time, on `proxy` (bus or socket).
async fn direct(
    proxy: &tpmd_api::Daemon1Proxy<'_>,
    key: &[u8],
    kind: Kind,
    ops: usize,
    samples: &mut Samples,
) {
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let digest = Sha256::digest(i.to_be_bytes());
        let t = Instant::now();
        proxy
            .sign(key, &[], kind.dbus_scheme(), "sha256", &digest)
            .await
            .unwrap();
        latencies.push(t.elapsed());
    }
    samples.add(latencies, start.elapsed());
}

/// The module loaded with `TPMD_SOCKET` set to `socket` ("none": the bus only), signing
/// with 1 then 16 threads into `one` and `sixteen`. The module reads its environment
/// when it connects.
fn module_round(kind: Kind, socket: &str, ops: usize, one: &mut Samples, sixteen: &mut Samples) {
    std::env::set_var("TPMD_SOCKET", socket);
    let p = load(&module_path());
    c_sign(&p, kind, "bench", None, 1, 10, &mut Samples::default());
    c_sign(&p, kind, "bench", None, 1, ops, one);
    c_sign(&p, kind, "bench", None, 16, ops, sixteen);
    drop(p);
}

const ROWS: [&str; 6] = [
    "tpmd Sign via the bus (no module)",
    "tpmd Sign via the socket (no module)",
    "tpmd-pkcs11 via the bus, 1 thread",
    "tpmd-pkcs11 via the socket, 1 thread",
    "tpmd-pkcs11 via the bus, 16 threads",
    "tpmd-pkcs11 via the socket, 16 threads",
];

async fn measure(kind: Kind, ops: usize, rounds: usize) {
    let sim = Simulator::start_temporary().unwrap();
    let bus = PrivateBus::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let transport = sim.transport().to_string();
    let home = dir.path().join("home");
    let store = home.join(".local/share/tpmd/keys");
    std::fs::create_dir_all(&store).unwrap();
    let socket = dir.path().join("tpmd.sock");
    let socket_arg = socket.to_string_lossy().into_owned();
    let tpmd_args = ["--socket", socket_arg.as_str()];
    std::env::set_var("TPMD_BUS_ADDRESS", bus.address());
    std::env::set_var("HOME", &home);
    std::env::set_var("XDG_DATA_HOME", home.join(".local/share"));
    std::env::set_var("XDG_CONFIG_HOME", home.join(".config"));

    let start_tpmd = |n: usize| {
        TpmdProcess::start(
            &bus,
            &transport,
            &tpmd_args,
            dir.path().join(format!("tpmd-{n}.log")),
        )
    };
    let mut tpmd = start_tpmd(0).await.unwrap();
    let conn = bus.connect().await.unwrap();
    let bus_proxy = tpmd_api::Daemon1Proxy::new(&conn).await.unwrap();
    let key = bus_proxy
        .generate(kind.tpmd_type, &[], GenerateOptions::default())
        .await
        .unwrap();
    std::fs::write(store.join("bench.tpm"), &key).unwrap();

    let per_round = ops / rounds;
    let mut floor = Samples::default();
    let mut rows: Vec<Samples> = ROWS.iter().map(|_| Samples::default()).collect();
    for round in 1..=rounds {
        // The floor needs the simulator to itself.
        tpmd.stop();
        raw_tpm2_samples(
            &sim,
            &key,
            per_round,
            RawSession::Password,
            kind.raw_scheme(),
            &mut floor,
        );
        tpmd = start_tpmd(round).await.unwrap();
        // tpmd called directly, without the module, for reference.
        let socket_proxy = connect_socket(&socket).await.unwrap();
        let [bus_direct, socket_direct, bus_one, socket_one, bus_sixteen, socket_sixteen] =
            &mut rows[..]
        else {
            unreachable!("six rows")
        };
        let mut warm_up = Samples::default();
        direct(&bus_proxy, &key, kind, 10, &mut warm_up).await;
        direct(&socket_proxy, &key, kind, 10, &mut warm_up).await;
        direct(&bus_proxy, &key, kind, per_round, bus_direct).await;
        direct(&socket_proxy, &key, kind, per_round, socket_direct).await;
        drop(socket_proxy);
        module_round(kind, "none", per_round, bus_one, bus_sixteen);
        module_round(kind, &socket_arg, per_round, socket_one, socket_sixteen);
    }
    drop(bus_proxy);
    tpmd.stop();
    let peer = tpm2_pkcs11_rows(&sim, &bus, dir.path(), kind, ops);

    let floor = floor.stats();
    println!(
        "{} signatures on swtpm, {ops} per row in {rounds} rounds; ratio = signs/s over the floor's",
        kind.title
    );
    let table = Table::start(40, floor.per_second);
    table.row("raw TPM2_Sign (floor)", &floor);
    for (name, samples) in ROWS.iter().zip(&rows) {
        table.row(name, &samples.stats());
    }
    for (name, stats) in &peer {
        table.row(name, stats);
    }
    println!();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ops: usize = ops_arg(400);
    let rounds = usize_arg("--rounds", 4).max(1);
    for kind in KINDS {
        measure(kind, ops, rounds).await;
    }
}
