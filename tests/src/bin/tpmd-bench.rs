//! Signing throughput and latency of tpmd over D-Bus, as ratios to the raw TPM on the same
//! simulator in the same run: tss-esapi TPM2_Sign with a session set once on a TPM 2.0, or
//! with `--tpm12` our own TPM 1.2 client's TPM_Sign on a swtpm in 1.2 mode.
//!
//!   cargo build --release --workspace && target/release/tpmd-bench [--ops N] [--tpm12]
//!
//! Not a test: it asserts nothing about time; it prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;
use tpmd_tests::bench::{ms, ops_arg, raw_tpm2_floor, stats, RawScheme, RawSession, Stats, Table};

use sha2::{Digest as _, Sha256};
use tpmd_api::client::wrap_and_import;
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::privkey::read_private_key;
use tpmd_api::{Daemon1Proxy, DEFAULT_SRK_HANDLE};
use tpmd_simulator::{Family, Simulator};
use tpmd_tests::{PrivateBus, TpmdProcess};
use tpmd_tpm12::client::{Tpm12, Transport as Tpm12Transport};
use tpmd_tpm12::keys::digest_info::{digest_info, Hash};

/// Raw TPM_Sign through our TPM 1.2 client on a loaded key (no auth: TPM_AUTH_NEVER).
fn raw_floor_tpm12(sim: &Simulator, key_pem: &[u8], ops: usize) -> Stats {
    let blob = tpmd_tpm12::keys::file::read(key_pem).unwrap().blob;
    let mut tpm = Tpm12::connect(Tpm12Transport::swtpm_tcp(sim.port())).unwrap();
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
    stats(latencies, wall)
}

/// The floor of this family: the raw TPM's own signing loop.
fn floor(family: Family, sim: &Simulator, key_pem: &[u8], ops: usize) -> Stats {
    match family {
        Family::Tpm2 => {
            raw_tpm2_floor(sim, key_pem, ops, RawSession::Password, RawScheme::RsaPkcs1)
        }
        Family::Tpm12 => raw_floor_tpm12(sim, key_pem, ops),
    }
}

async fn through_tpmd(
    bus: &PrivateBus,
    keys: Arc<Vec<Vec<u8>>>,
    clients: usize,
    ops: usize,
) -> Stats {
    let start = Instant::now();
    let mut tasks = Vec::new();
    let per_client = ops / clients;
    for c in 0..clients {
        let conn = bus.connect().await.unwrap();
        let proxy = tpmd_api::Daemon1Proxy::new(&conn).await.unwrap();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let key = &keys[(c + i * clients) % keys.len()];
                let digest = Sha256::digest((c * 1_000_000 + i).to_be_bytes());
                let t = Instant::now();
                proxy
                    .sign(key, &[], scheme::RSA_PKCS1, "sha256", &digest)
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
    stats(all, start.elapsed())
}

/// Many distinct key blobs: one software key wrapped again and again (each wrap has a
/// fresh seed or migration secret, so each is a different object to the TPM).
async fn wrapped_copies(proxy: &Daemon1Proxy<'_>, n: usize) -> Vec<Vec<u8>> {
    let pem = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
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

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let ops: usize = ops_arg(400);
    let family = if std::env::args().any(|a| a == "--tpm12") {
        Family::Tpm12
    } else {
        Family::Tpm2
    };
    let tpmd_args: &[&str] = match family {
        Family::Tpm2 => &[],
        Family::Tpm12 => &["--tpm12"],
    };
    let sim = Simulator::start_in_tempdir(family, None, true).unwrap();
    let bus = PrivateBus::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let transport = sim.transport().to_string();

    // Make the keys through tpmd, then stop it: swtpm serves one client at a time.
    let mut tpmd = TpmdProcess::start(&bus, &transport, tpmd_args, dir.path().join("a.log"))
        .await
        .unwrap();
    let conn = bus.connect().await.unwrap();
    let proxy = tpmd_api::Daemon1Proxy::new(&conn).await.unwrap();
    let one_key = proxy
        .generate("rsa2048", &[], GenerateOptions::default())
        .await
        .unwrap();
    let many = wrapped_copies(&proxy, 200).await;
    drop(proxy);
    tpmd.stop();

    // swtpm's own speed drifts over a run, so the floor is measured before and after
    // the tpmd rows and averaged.
    let floor_before = floor(family, &sim, &one_key, ops);
    let raw_hmac = (family == Family::Tpm2)
        .then(|| raw_tpm2_floor(&sim, &one_key, ops, RawSession::Hmac, RawScheme::RsaPkcs1));

    let mut tpmd = TpmdProcess::start(&bus, &transport, tpmd_args, dir.path().join("b.log"))
        .await
        .unwrap();
    let one = Arc::new(vec![one_key.clone()]);
    let many = Arc::new(many);
    // Warm up: every key's first load from its blob is a one-time cost; the rows
    // measure the steady state, where keys come back from saved contexts.
    through_tpmd(&bus, one.clone(), 1, 10).await;
    through_tpmd(&bus, many.clone(), 1, many.len()).await;

    let conn = bus.connect().await.unwrap();
    let proxy = tpmd_api::Daemon1Proxy::new(&conn).await.unwrap();
    let mut latencies = Vec::new();
    let start = Instant::now();
    for _ in 0..ops {
        let t = Instant::now();
        proxy.get_counters().await.unwrap();
        latencies.push(t.elapsed());
    }
    let dbus_round_trip = stats(latencies, start.elapsed());
    let mut rows = Vec::new();
    for (name, keys, clients) in [
        ("tpmd D-Bus, 1 key, 1 client", one.clone(), 1),
        ("tpmd D-Bus, 1 key, 16 clients", one.clone(), 16),
        ("tpmd D-Bus, 200 keys, 1 client", many.clone(), 1),
        ("tpmd D-Bus, 200 keys, 16 clients", many.clone(), 16),
    ] {
        rows.push((name, through_tpmd(&bus, keys, clients, ops).await));
    }
    let counters = proxy.get_counters().await.unwrap();
    drop(proxy);
    tpmd.stop();
    let floor_after = floor(family, &sim, &one_key, ops);
    let floor_rate = (floor_before.per_second + floor_after.per_second) / 2.0;

    let (tpm, raw) = match family {
        Family::Tpm2 => ("TPM 2.0", "raw TPM2_Sign"),
        Family::Tpm12 => ("TPM 1.2", "raw TPM_Sign"),
    };
    println!("RSA-2048 PKCS#1 v1.5 SHA-256 signatures on swtpm ({tpm}), {ops} per row; ratio = signs/s over the floor's mean");
    let table = Table::start(36, floor_rate);
    let row = |name: &str, s: &Stats| table.row(name, s);
    row(&format!("{raw}, before (floor)"), &floor_before);
    row(&format!("{raw}, after (floor)"), &floor_after);
    if let Some(raw_hmac) = &raw_hmac {
        row(&format!("{raw}, HMAC session"), raw_hmac);
    }
    for (name, s) in &rows {
        row(name, s);
    }
    println!(
        "D-Bus round trip through tpmd's queue (GetCounters): p50 {:.3} ms, p99 {:.3} ms",
        ms(dbus_round_trip.p50),
        ms(dbus_round_trip.p99)
    );
    println!(
        "resource manager: hits {} loads {} context loads {} evictions {} retries {}",
        counters.hits.unwrap_or(0),
        counters.loads.unwrap_or(0),
        counters.context_loads.unwrap_or(0),
        counters.evictions.unwrap_or(0),
        counters.retries.unwrap_or(0)
    );
}
