//! Signing throughput and latency of tpmd over D-Bus, as ratios to the raw TPM (tss-esapi
//! TPM2_Sign with a session set once) on the same simulator in the same run.
//!
//!   cargo build --release --workspace && target/release/tpmd-bench [--ops N]
//!
//! Not a test: it asserts nothing about time; it prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tpmd::backend::tpm2::blob::{KeyBlob, KeyPrivate};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::duplicate::wrap_for_parent;
use tpmd_api::privkey::read_private_key;
use tpmd_api::TpmPublic;
use tpmd_simulator::Simulator;
use tpmd_tests::{PrivateBus, TpmdProcess};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Digest, HashScheme, HashcheckTicket, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

struct Stats {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut latencies: Vec<Duration>, wall: Duration) -> Stats {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Stats {
        per_second: latencies.len() as f64 / wall.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How the raw loop authorizes its key (empty auth value).
#[derive(Clone, Copy, PartialEq)]
enum RawSession {
    /// A password session, as `tpm2_sign` uses: the least work for the TPM.
    Password,
    /// An unsalted HMAC session started once.
    Hmac,
}

/// Raw TPM2_Sign through tss-esapi on a loaded key, the session set once.
fn raw_floor(sim: &Simulator, key_pem: &[u8], ops: usize, how: RawSession) -> Stats {
    let (_, blob) = KeyBlob::parse(key_pem).unwrap();
    let KeyPrivate::Loadable(private) = blob.private else {
        panic!("expected a loadable key")
    };
    let mut ctx = sim.transport().open().unwrap();
    let srk = ctx
        .execute_without_session(|c| {
            c.tr_from_tpm_public(TpmHandle::Persistent(
                PersistentTpmHandle::new(0x8100_0001).unwrap(),
            ))
        })
        .unwrap();
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Hmac,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .unwrap();
    ctx.set_sessions((session, None, None));
    let key = ctx.load(srk.into(), private, blob.public).unwrap();
    if how == RawSession::Password {
        ctx.set_sessions((Some(AuthSession::Password), None, None));
    }
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .unwrap();
    let scheme = SignatureScheme::RsaSsa {
        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
    };
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let digest = Digest::try_from(Sha256::digest(i.to_be_bytes()).to_vec()).unwrap();
        let t = Instant::now();
        ctx.sign(key, digest, scheme, ticket.clone()).unwrap();
        latencies.push(t.elapsed());
    }
    let wall = start.elapsed();
    ctx.flush_context(key.into()).unwrap();
    stats(latencies, wall)
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
/// fresh seed, so each is a different object to the TPM).
fn wrapped_copies(parent: &TpmPublic, n: usize) -> Vec<Vec<u8>> {
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
    (0..n)
        .map(|_| {
            wrap_for_parent(&key, &[], parent, 0x8100_0001)
                .unwrap()
                .to_der()
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let ops: usize = std::env::args()
        .skip_while(|a| a != "--ops")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let sim = Simulator::start_temporary().unwrap();
    let bus = PrivateBus::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let transport = sim.transport().to_string();

    // Make the keys through tpmd, then stop it: swtpm serves one client at a time.
    let mut tpmd = TpmdProcess::start(&bus, &transport, &[], dir.path().join("a.log"))
        .await
        .unwrap();
    let conn = bus.connect().await.unwrap();
    let proxy = tpmd_api::Daemon1Proxy::new(&conn).await.unwrap();
    let one_key = proxy
        .generate("rsa2048", &[], GenerateOptions::default())
        .await
        .unwrap();
    let parent = TpmPublic::from_tpm2b(&proxy.parent_public(0x8100_0001).await.unwrap()).unwrap();
    let mut many = Vec::new();
    for importable in wrapped_copies(&parent, 200) {
        many.push(proxy.import(&importable).await.unwrap());
    }
    drop(proxy);
    tpmd.stop();

    // swtpm's own speed drifts over a run, so the floor is measured before and after
    // the tpmd rows and averaged.
    let floor_before = raw_floor(&sim, &one_key, ops, RawSession::Password);
    let raw_hmac = raw_floor(&sim, &one_key, ops, RawSession::Hmac);

    let mut tpmd = TpmdProcess::start(&bus, &transport, &[], dir.path().join("b.log"))
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
    let floor_after = raw_floor(&sim, &one_key, ops, RawSession::Password);
    let floor_rate = (floor_before.per_second + floor_after.per_second) / 2.0;

    println!("RSA-2048 PKCS#1 v1.5 SHA-256 signatures on swtpm, {ops} per row; ratio = signs/s over the floor's mean");
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>8}",
        "", "signs/s", "p50 ms", "p99 ms", "ratio"
    );
    let row = |name: &str, s: &Stats| {
        println!(
            "{:<36} {:>9.1} {:>9.2} {:>9.2} {:>8.2}",
            name,
            s.per_second,
            ms(s.p50),
            ms(s.p99),
            s.per_second / floor_rate
        );
    };
    row("raw TPM2_Sign, before (floor)", &floor_before);
    row("raw TPM2_Sign, after (floor)", &floor_after);
    row("raw TPM2_Sign, HMAC session", &raw_hmac);
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
