//! Where the time of one tpmd call goes, through the bus and through tpmd's socket: the
//! median of calls that stop at successive stages, on one simulator in one run.
//!
//! - `Peer.Ping`: the client library, the transport (dbus-daemon or not) and tpmd's
//!   D-Bus dispatch, answered on tpmd's async thread;
//! - `GetCounters`: the same plus the hop to tpmd's TPM thread and back (no TPM command);
//! - a refused `Sign` (a digest of the wrong size): the same plus finding the key file's
//!   blob in tpmd's cache, up to where the TPM command would be built;
//! - `Sign` (ECDSA P-256, key loaded): the same plus one TPM2_Sign through tpmd's
//!   transport;
//! - the raw TPM2_Sign floor (tss-esapi, no tpmd).
//!
//! Each is measured with the client on a multi-threaded tokio runtime (as tpmd-ssh-agent
//! and the benchmarks run) and on a current-thread one (one thread does everything).
//!
//!   cargo build --release -p tpmd -p tpmd-tests --bin call-stages
//!   target/release/call-stages [--ops N]
//!
//! Not a test: it asserts nothing about time; it prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tpmd_api::client::connection::connect_socket;
use tpmd_api::dbus::{scheme, GenerateOptions, BUS_NAME, OBJECT_PATH};
use tpmd_api::Daemon1Proxy;
use tpmd_tests::bench::{ms, ops_arg, stats, RawKey, RawPattern, RawScheme, RawSession, RawVia};
use tpmd_tests::TestEnv;

async fn median<F, Fut>(ops: usize, mut call: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    for i in 0..10 {
        call(i).await;
    }
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let t = Instant::now();
        call(i).await;
        latencies.push(t.elapsed());
    }
    stats(latencies, start.elapsed()).p50
}

/// (ping, counters, refused sign, sign) medians on `proxy`.
async fn stages(proxy: &Daemon1Proxy<'static>, key: &[u8], ops: usize) -> [Duration; 4] {
    let peer = zbus::fdo::PeerProxy::builder(proxy.inner().connection())
        .destination(BUS_NAME)
        .path(OBJECT_PATH)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let ping = median(ops, |_| async { peer.ping().await.unwrap() }).await;
    let counters = median(ops, |_| async {
        proxy.get_counters().await.unwrap();
    })
    .await;
    let refused = median(ops, |_| async {
        let short = [0u8; 31];
        tpmd_tests::calls::sign(proxy, key, &[], scheme::ECDSA, "sha256", &short)
            .await
            .unwrap_err();
    })
    .await;
    let sign = median(ops, |i| {
        let digest = Sha256::digest(i.to_be_bytes());
        async move {
            tpmd_tests::calls::sign(proxy, key, &[], scheme::ECDSA, "sha256", &digest)
                .await
                .unwrap();
        }
    })
    .await;
    [ping, counters, refused, sign]
}

async fn connect(bus_address: &str, socket: Option<&Path>) -> Daemon1Proxy<'static> {
    match socket {
        Some(path) => connect_socket(path).await.unwrap(),
        None => {
            let conn = zbus::connection::Builder::address(bus_address)
                .build()
                .await
                .unwrap();
            Daemon1Proxy::new(&conn).await.unwrap()
        }
    }
}

/// The stages measured from a fresh current-thread runtime on its own thread.
fn on_one_thread(
    bus_address: String,
    socket: Option<std::path::PathBuf>,
    key: Vec<u8>,
    ops: usize,
) -> [Duration; 4] {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let proxy = connect(&bus_address, socket.as_deref()).await;
                stages(&proxy, &key, ops).await
            })
    })
    .join()
    .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let ops = ops_arg(1000);
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("tpmd.sock");
    let socket_arg = socket.to_string_lossy().into_owned();
    let tpmd_args = ["--socket", socket_arg.as_str()];
    let mut env = TestEnv::start_with(&tpmd_args).await;
    let key = env
        .proxy()
        .await
        .generate("ecc-p256", &[], GenerateOptions::default())
        .await
        .unwrap();
    env.tpmd.stop();
    let via = RawVia::Esys(env.sim.tcp_transport().to_string());
    let floor = RawKey {
        via: &via,
        pem: &key,
        auth: &[],
        scheme: RawScheme::Ecdsa,
    }
    .stats(RawPattern::Hot(RawSession::Password), ops);
    env.restart_tpmd(&tpmd_args).await;
    let bus = env.bus.address().to_string();

    println!(
        "ECDSA P-256, medians of {ops} calls (ms); raw TPM2_Sign: {:.3}",
        ms(floor.p50)
    );
    println!(
        "{:<32} {:>6} {:>11} {:>8} {:>6} {:>8} {:>13} {:>10}",
        "client", "Ping", "GetCounters", "refused", "Sign", "- floor", "Sign-refused", "floor/Sign"
    );
    let print = |name: &str, [ping, counters, refused, sign]: [Duration; 4]| {
        println!(
            "{:<32} {:>6.3} {:>11.3} {:>8.3} {:>6.3} {:>8.3} {:>13.3} {:>10.2}",
            name,
            ms(ping),
            ms(counters),
            ms(refused),
            ms(sign),
            ms(sign) - ms(floor.p50),
            ms(sign) - ms(refused),
            ms(floor.p50) / ms(sign)
        );
    };
    for round in 0..2 {
        let suffix = if round == 0 { "" } else { " (again)" };
        let proxy = connect(&bus, None).await;
        print(
            &format!("bus, multi-thread{suffix}"),
            stages(&proxy, &key, ops).await,
        );
        let proxy = connect(&bus, Some(&socket)).await;
        print(
            &format!("socket, multi-thread{suffix}"),
            stages(&proxy, &key, ops).await,
        );
        print(
            &format!("bus, current-thread{suffix}"),
            on_one_thread(bus.clone(), None, key.clone(), ops),
        );
        print(
            &format!("socket, current-thread{suffix}"),
            on_one_thread(bus.clone(), Some(socket.clone()), key.clone(), ops),
        );
    }
}
