//! Signing throughput and latency of tpmd's Sign called directly (peer to peer on tpmd's
//! socket, as the frontends call it), with 1 key and with `--keys N` keys rotating (200
//! by default: distinct blobs, so with a TPM's 3 object slots nearly every signature swaps
//! a key in from its saved context), 1 and 16 clients, RSA-2048 and ECDSA P-256, as ratios
//! to the raw TPM on the same simulator in the same run: tss-esapi TPM2_Sign on a loaded
//! key with a password session (the floor), beside what swapping a key in costs a raw
//! client (ContextLoad + Sign + FlushContext, and ContextLoad + FlushContext alone). With
//! `--tpm12`: RSA-2048 on a swtpm in 1.2 mode, the floor our own TPM 1.2 client's TPM_Sign.
//!
//! The rows take turns: in each of `--rounds` rounds tpmd stops, the raw rows sign their
//! share, tpmd starts again, loads every key once (not timed) and every tpmd row signs
//! its share, so that the simulator's drift hits them alike.
//!
//!   cargo build --release -p tpmd -p tpmd-tests --bin tpmd-bench
//!   target/release/tpmd-bench [--ops N] [--rounds R] [--keys N] [--tpm12] [--kernel-rm] [--latency PROFILE]
//!
//! Not a test: it asserts nothing about time; it prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest as _, Sha256};
use tpmd_api::client::connection::connect_socket;
use tpmd_api::client::wrap_and_import;
use tpmd_api::dbus::GenerateOptions;
use tpmd_api::privkey::read_private_key;
use tpmd_api::{Daemon1Proxy, DEFAULT_SRK_HANDLE};
use tpmd_simulator::{Family, Simulator};
use tpmd_tests::bench::{
    commands_per_op, flag, ops_arg, reset_counts, usize_arg, Kind, Model, RawKey, RawPattern,
    RawSession, Samples, Table, KINDS, RSA,
};
use tpmd_tests::TestEnv;
use tpmd_tpm12::client::{Tpm12, Transport as Tpm12Transport};
use tpmd_tpm12::keys::digest_info::{digest_info, Hash};

/// Raw TPM_Sign through our TPM 1.2 client on a loaded key (no auth: TPM_AUTH_NEVER).
fn raw_tpm12(sim: &Simulator, key_pem: &[u8], ops: usize, samples: &mut Samples) {
    let blob = tpmd_tpm12::keys::file::read(key_pem).unwrap().blob;
    let mut tpm = Tpm12::connect(Tpm12Transport::swtpm_tcp(sim.port())).unwrap();
    // As tpmd does: on swtpm this tries swtpm_setup's well-known SRK secret first. Without
    // it each round spends a dictionary-attack strike, and the TPM soon refuses the load
    // with TPM_DEFEND_LOCK_RUNNING.
    tpm.version_info().unwrap();
    let key = tpm.load_key(&blob).unwrap();
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let info = digest_info(Hash::Sha256, &Sha256::digest(i.to_be_bytes())).unwrap();
        let t = Instant::now();
        tpm.sign(key, None, &info).unwrap();
        latencies.push(t.elapsed());
    }
    let wall = start.elapsed();
    tpm.flush_key(key).unwrap();
    samples.add(latencies, wall);
}

/// `clients` concurrent callers on their own socket connections, key `i` of a client's
/// turn taken in rotation from `keys`, `ops` signatures in all.
async fn through_tpmd(
    socket: &Path,
    keys: Arc<Vec<Vec<u8>>>,
    kind: Kind,
    clients: usize,
    ops: usize,
    samples: &mut Samples,
) {
    let per_client = (ops / clients).max(1);
    let mut proxies = Vec::with_capacity(clients);
    for _ in 0..clients {
        proxies.push(connect_socket(socket).await.unwrap());
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, proxy) in proxies.into_iter().enumerate() {
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let key = &keys[(c + i * clients) % keys.len()];
                let digest = Sha256::digest((c * 1_000_000 + i).to_be_bytes());
                let t = Instant::now();
                tpmd_tests::calls::sign(&proxy, key, &[], kind.dbus_scheme(), "sha256", &digest)
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    samples.add(all, start.elapsed());
}

/// Many distinct key blobs: one software key wrapped again and again (each wrap has a
/// fresh seed or migration secret, so each is a different object to the TPM).
async fn wrapped_copies(proxy: &Daemon1Proxy<'_>, kind: Kind, n: usize) -> Vec<Vec<u8>> {
    let algorithm: &[&str] = if kind.rsa {
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    } else {
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    };
    let pem = std::process::Command::new("openssl")
        .arg("genpkey")
        .args(algorithm)
        .output()
        .unwrap()
        .stdout;
    let key = read_private_key(&pem, None).unwrap().key;
    let mut copies = Vec::with_capacity(n);
    for _ in 0..n {
        let file = wrap_and_import(proxy, &key, &[], DEFAULT_SRK_HANDLE)
            .await
            .unwrap();
        copies.push(file.into_bytes());
    }
    copies
}

/// (name, many keys, clients).
const ROWS: [(&str, bool, usize); 4] = [
    ("tpmd Sign, 1 key, 1 client", false, 1),
    ("tpmd Sign, 1 key, 16 clients", false, 16),
    ("tpmd Sign, N keys, 1 client", true, 1),
    ("tpmd Sign, N keys, 16 clients", true, 16),
];

async fn measure(model: &Model, family: Family, kind: Kind, opts: &Options) {
    let Options { ops, rounds, keys } = *opts;
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("tpmd.sock");
    let socket_arg = socket.to_string_lossy().into_owned();
    let tpmd_args = ["--socket", socket_arg.as_str()];
    let sim = match family {
        Family::Tpm2 => model.start(),
        Family::Tpm12 => Simulator::start_in_tempdir(family, None, true).unwrap(),
    };
    let mut env = TestEnv::start_on(sim, &tpmd_args).await;
    let proxy = env.proxy().await;
    let one_key = proxy
        .generate(kind.tpmd_type, &[], GenerateOptions::default())
        .await
        .unwrap();
    let many = Arc::new(wrapped_copies(&proxy, kind, keys).await);
    let one = Arc::new(vec![one_key.clone()]);
    drop(proxy);

    let via = model.raw_via(&env.sim);
    let raw_key = RawKey {
        via: &via,
        pem: &one_key,
        auth: &[],
        scheme: kind.raw_scheme(),
    };
    let mut raw_rows = vec![(
        "raw TPM2_Sign (floor)",
        RawPattern::Hot(RawSession::Password),
    )];
    match family {
        Family::Tpm2 => {
            if !model.modelled() {
                // (The wire loops on a model have password sessions only.)
                raw_rows.push((
                    "raw TPM2_Sign, HMAC session",
                    RawPattern::Hot(RawSession::Hmac),
                ));
            }
            raw_rows.push(("raw ContextLoad + Sign + FlushContext", RawPattern::Swapped));
            raw_rows.push((
                "raw ContextLoad + FlushContext alone",
                RawPattern::ContextLoadOnly,
            ));
        }
        Family::Tpm12 => raw_rows[0].0 = "raw TPM_Sign (floor)",
    }
    let per_round = (ops / rounds).max(1);
    let mut raw: Vec<Samples> = raw_rows.iter().map(|_| Samples::default()).collect();
    let mut rows: Vec<Samples> = ROWS.iter().map(|_| Samples::default()).collect();
    let mut commands = vec![String::new(); ROWS.len()];
    let mut counters = None;
    for _ in 0..rounds {
        env.tpmd.stop();
        for ((_, pattern), samples) in raw_rows.iter().zip(&mut raw) {
            match family {
                Family::Tpm2 => raw_key.run(*pattern, per_round, samples),
                Family::Tpm12 => raw_tpm12(&env.sim, &one_key, per_round, samples),
            }
        }
        env.restart_tpmd(&tpmd_args).await;
        // Every key's first load from its blob is a one-time cost; the rows measure the
        // steady state, where keys come back from saved contexts.
        let mut warm_up = Samples::default();
        through_tpmd(&socket, one.clone(), kind, 1, 2, &mut warm_up).await;
        through_tpmd(&socket, many.clone(), kind, 1, many.len(), &mut warm_up).await;
        for (((_, rotate, clients), samples), commands) in
            ROWS.iter().zip(&mut rows).zip(&mut commands)
        {
            let keys = if *rotate { &many } else { &one };
            let before = samples.len();
            reset_counts(&env.sim);
            through_tpmd(&socket, keys.clone(), kind, *clients, per_round, samples).await;
            *commands = commands_per_op(&env.sim, samples.len() - before);
        }
        let proxy = connect_socket(&socket).await.unwrap();
        counters = Some(proxy.get_counters().await.unwrap());
    }
    env.tpmd.stop();

    let tpm = match family {
        Family::Tpm2 => model.describe(),
        Family::Tpm12 => "swtpm (TPM 1.2)".into(),
    };
    println!(
        "{} signatures on {tpm}, {ops} per row in {rounds} rounds, N = {keys}; ratios to the floor: rate = signs/s, p50 = floor's p50 / row's p50",
        kind.title()
    );
    let table = Table::start(40, &raw[0]);
    for ((name, _), samples) in raw_rows.iter().zip(&raw) {
        table.row(name, samples);
    }
    for ((name, _, _), samples) in ROWS.iter().zip(&rows) {
        table.row(name, samples);
    }
    if let Some(c) = counters {
        println!(
            "tpmd's resource manager since its last start: hits {} loads {} context loads {} evictions {} retries {}",
            c.hits.unwrap_or(0),
            c.loads.unwrap_or(0),
            c.context_loads.unwrap_or(0),
            c.evictions.unwrap_or(0),
            c.retries.unwrap_or(0)
        );
    }
    if model.modelled() && family == Family::Tpm2 {
        println!("TPM commands per signature (last round):");
        for ((name, _, _), commands) in ROWS.iter().zip(&commands) {
            println!("  {name}: {commands}");
        }
    }
    println!();
}

#[derive(Clone, Copy)]
struct Options {
    ops: usize,
    rounds: usize,
    keys: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let model = Model::from_args();
    let opts = Options {
        ops: ops_arg(400),
        rounds: usize_arg("--rounds", 4).max(1),
        keys: usize_arg("--keys", 200).max(1),
    };
    if flag("--tpm12") {
        if model.modelled() {
            eprintln!("--tpm12 runs on swtpm only: drop --kernel-rm and --latency");
            std::process::exit(2);
        }
        measure(&model, Family::Tpm12, RSA, &opts).await;
        return;
    }
    for kind in KINDS {
        measure(&model, Family::Tpm2, kind, &opts).await;
    }
}
