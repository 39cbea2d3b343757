//! C_Sign through libtpmd_pkcs11.so, RSA-2048 and ECDSA P-256, keys without and with a
//! PIN, as ratios to the raw TPM (tss-esapi TPM2_Sign with a password session) on the
//! same simulator in the same run, with the module reaching tpmd through the bus and
//! peer to peer on tpmd's socket, beside tpm2-pkcs11 (Debian libtpm2-pkcs11-1, whose
//! keys always have a PIN) on the same transport with tpmd stopped (swtpm serves one
//! client at a time).
//!
//! The rows take turns: in each of `--rounds` rounds tpmd stops, the floor and
//! tpm2-pkcs11 sign their share, tpmd starts again and every tpmd row signs its share
//! (the module loaded afresh), so that the simulator's drift hits them alike.
//!
//!   cargo build --release -p tpmd -p tpmd-pkcs11 -p tpmd-tests --bin pkcs11-bench
//!   target/release/pkcs11-bench [--ops N] [--rounds R] [--kernel-rm] [--latency PROFILE]
//!
//! Not a test: it asserts nothing about time; it prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tpmd_tests::bench::clients::{c_sign, direct_sign, load_module};
use tpmd_tests::bench::tpm2_pkcs11::{self, Tpm2Pkcs11};
use tpmd_tests::bench::{
    ops_arg, paired, usize_arg, Kind, Model, RawKey, RawPattern, RawSession, Samples, Table, KINDS,
};

use tpmd_api::client::connection::connect_socket;
use tpmd_api::dbus::GenerateOptions;
use tpmd_tests::pkcs11::module_path;
use tpmd_tests::{PrivateBus, TpmdProcess};

/// The PIN of the tpmd key that has one (the module's login PIN).
const PIN: &str = "4321";

#[derive(Clone, Copy)]
enum Route {
    Direct { socket: bool },
    Module { socket: bool, threads: usize },
}

const ROWS: [(&str, Route, bool); 9] = [
    (
        "tpmd Sign via the bus (no module)",
        Route::Direct { socket: false },
        false,
    ),
    (
        "tpmd Sign via the socket (no module)",
        Route::Direct { socket: true },
        false,
    ),
    (
        "tpmd-pkcs11 via the bus, 1 thread",
        Route::Module {
            socket: false,
            threads: 1,
        },
        false,
    ),
    (
        "tpmd-pkcs11 via the socket, 1 thread",
        Route::Module {
            socket: true,
            threads: 1,
        },
        false,
    ),
    (
        "tpmd-pkcs11 via the bus, 16 threads",
        Route::Module {
            socket: false,
            threads: 16,
        },
        false,
    ),
    (
        "tpmd-pkcs11 via the socket, 16 threads",
        Route::Module {
            socket: true,
            threads: 16,
        },
        false,
    ),
    (
        "PIN: tpmd Sign via the socket (no module)",
        Route::Direct { socket: true },
        true,
    ),
    (
        "PIN: tpmd-pkcs11 via the socket, 1 thread",
        Route::Module {
            socket: true,
            threads: 1,
        },
        true,
    ),
    (
        "PIN: tpmd-pkcs11 via the socket, 16 threads",
        Route::Module {
            socket: true,
            threads: 16,
        },
        true,
    ),
];

/// The module's label of a key file: its name without `.tpm`.
fn label(pin: bool) -> &'static str {
    if pin {
        "bench-pin"
    } else {
        "bench"
    }
}

/// The module loaded with `TPMD_SOCKET` set to `socket` ("none": the bus only), signing
/// the rows that go that way. The module reads its environment when it connects.
fn module_rows(
    kind: Kind,
    socket: Option<&str>,
    per_round: usize,
    rows: &mut [Samples],
    warm_up: &mut Samples,
) {
    std::env::set_var("TPMD_SOCKET", socket.unwrap_or("none"));
    let p = load_module(&module_path());
    for pin in [false, true] {
        c_sign(&p, kind, label(pin), pin.then_some(PIN), 1, 5, warm_up);
    }
    for ((_, route, pin), samples) in ROWS.iter().zip(rows) {
        if let Route::Module { socket: s, threads } = *route {
            if s == socket.is_some() {
                let pin = pin.then_some(PIN);
                c_sign(
                    &p,
                    kind,
                    label(pin.is_some()),
                    pin,
                    threads,
                    per_round,
                    samples,
                );
            }
        }
    }
}

/// tpm2-pkcs11's share of a round, 1 thread. (Not 16: with 16 threads on its one
/// connection to the TPM, tpm2-pkcs11 1.9 now and then fails a C_Sign with
/// CKR_OPERATION_NOT_INITIALIZED.)
fn tpm2_pkcs11_round(kind: Kind, per_round: usize, one: &mut Samples) {
    let p = load_module(std::path::Path::new(tpm2_pkcs11::MODULE));
    let pin = Some(tpm2_pkcs11::PIN);
    c_sign(
        &p,
        kind,
        tpm2_pkcs11::LABEL,
        pin,
        1,
        5,
        &mut Samples::default(),
    );
    c_sign(&p, kind, tpm2_pkcs11::LABEL, pin, 1, per_round, one);
}

async fn measure(model: &Model, kind: Kind, ops: usize, rounds: usize) {
    let sim = model.start();
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
    let mut keys = Vec::new();
    for pin in [false, true] {
        let auth = if pin { PIN.as_bytes() } else { &[] };
        let key = bus_proxy
            .generate(kind.tpmd_type, auth, GenerateOptions::default())
            .await
            .unwrap();
        std::fs::write(store.join(format!("{}.tpm", label(pin))), &key).unwrap();
        keys.push(key);
    }
    let [key, pin_key] = &keys[..] else {
        unreachable!("two keys")
    };
    tpmd.stop();
    let peer = Tpm2Pkcs11::create(model, &sim, &bus, dir.path(), kind);
    if let Ok(peer) = &peer {
        peer.set_vars();
    }
    let via = model.raw_via(&sim);
    let raw = |pem, auth| RawKey {
        via: &via,
        pem,
        auth,
        scheme: kind.raw_scheme(),
    };
    let (raw_key, raw_pin_key) = (raw(key, &[]), raw(pin_key, PIN.as_bytes()));

    let per_round = ops / rounds;
    let floor_pattern = RawPattern::Hot(RawSession::Password);
    let (mut floor, mut pin_floor) = (Samples::default(), Samples::default());
    let mut peer_one = Samples::default();
    let (mut first, mut first_pin) = (Samples::default(), Samples::default());
    let mut rows: Vec<Samples> = ROWS.iter().map(|_| Samples::default()).collect();
    for round in 1..=rounds {
        // The floor and tpm2-pkcs11 need the simulator to themselves.
        tpmd.stop();
        raw_key.run(floor_pattern, per_round, &mut floor);
        raw_pin_key.run(floor_pattern, per_round, &mut pin_floor);
        if peer.is_ok() {
            tpm2_pkcs11_round(kind, per_round, &mut peer_one);
        }
        tpmd = start_tpmd(round).await.unwrap();
        // What a user feels first: the module connects, tpmd loads the key.
        std::env::set_var("TPMD_SOCKET", &socket_arg);
        let p = load_module(&module_path());
        c_sign(&p, kind, label(false), None, 1, 1, &mut first);
        c_sign(&p, kind, label(true), Some(PIN), 1, 1, &mut first_pin);
        drop(p);
        let socket_proxy = connect_socket(&socket).await.unwrap();
        let mut warm_up = Samples::default();
        for ((_, route, pin), samples) in ROWS.iter().zip(&mut rows) {
            if let Route::Direct { socket } = *route {
                let proxy = if socket { &socket_proxy } else { &bus_proxy };
                let (key, auth) = if *pin {
                    (pin_key, PIN.as_bytes())
                } else {
                    (key, &[][..])
                };
                direct_sign(proxy, key, auth, kind, 5, &mut warm_up).await;
                direct_sign(proxy, key, auth, kind, per_round, samples).await;
            }
        }
        drop(socket_proxy);
        module_rows(kind, None, per_round, &mut rows, &mut warm_up);
        module_rows(kind, Some(&socket_arg), per_round, &mut rows, &mut warm_up);
    }
    drop(bus_proxy);
    tpmd.stop();

    println!(
        "{} signatures on {}, {ops} per row in {rounds} rounds; ratios to the floor: rate = signs/s, p50 = floor's p50 / row's p50",
        kind.title(),
        model.describe()
    );
    let table = Table::start(48, &floor);
    table.row("raw TPM2_Sign (floor)", &floor);
    table.row("raw TPM2_Sign, PIN key, password session", &pin_floor);
    for ((name, _, _), samples) in ROWS.iter().zip(&rows) {
        table.row(name, samples);
    }
    table.row("first C_Sign after tpmd starts (socket)", &first);
    table.row("PIN: first C_Sign after C_Login (socket)", &first_pin);
    match &peer {
        Ok(_) => {
            table.row("PIN: tpm2-pkcs11 C_Sign, 1 thread", &peer_one);
            let ours = rows[7].stats();
            let theirs = peer_one.stats();
            println!(
                "like for like (PIN keys, 1 thread, same transport): tpmd-pkcs11 / tpm2-pkcs11 = {:.2}x signs/s, {} by medians paired by round",
                ours.per_second / theirs.per_second,
                paired(&rows[7], &peer_one)
            );
        }
        Err(e) => println!("tpm2-pkcs11: {e}"),
    }
    println!();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let model = Model::from_args();
    let ops: usize = ops_arg(400);
    let rounds = usize_arg("--rounds", 4).max(1);
    for kind in KINDS {
        measure(&model, kind, ops, rounds).await;
    }
}
