//! How much one user's flood costs another: uid B's signature latency while uid A keeps
//! tpmd busy, beside B's latency alone, on one swtpm simulator in one run. Two real
//! users (made with useradd, so run it as root) on a private bus with the project's
//! system D-Bus policy; each runs `tpmd-load` under its own uid.
//!
//!   cargo build --release --workspace && sudo target/release/fairness-bench [--ops N]
//!
//! Rows: B alone; B while A keeps 64 signatures in flight; B while A keeps 1000 in
//! flight; B while A generates RSA-2048 keys four at a time. B signs one at a time with
//! an RSA-2048 key without an auth value. Not a test: it prints figures and ratios.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use tpmd_tests::bench::ops_arg;
use tpmd_tests::multi_user::{DaParameters, LoadReport, SharedTpm};
use tpmd_tests::users::TestUser;

struct Row {
    name: &'static str,
    b: LoadReport,
    b_per_second: f64,
    a_ops: u64,
    a_per_second: f64,
}

fn ms(us: Option<u64>) -> f64 {
    us.unwrap_or(0) as f64 / 1000.0
}

/// B's run, with A's `flood` (tpmd-load arguments) going on meanwhile, if any.
fn measure(
    env: &SharedTpm,
    a: &TestUser,
    b: &TestUser,
    b_key: &str,
    ops: usize,
    name: &'static str,
    flood: Option<Vec<String>>,
) -> Row {
    let stop = a.dir.join("stop");
    let _ = std::fs::remove_file(&stop);
    let flooding = flood.map(|mut args| {
        args.extend(["--ops", "0", "--until-file"].map(String::from));
        args.push(stop.to_str().unwrap().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = env.load(a, &args);
        // Let A's queue fill before B starts.
        std::thread::sleep(std::time::Duration::from_millis(500));
        child
    });
    let start = Instant::now();
    let (b_report, _) =
        LoadReport::collect(env.load(b, &["--key", b_key, "--ops", &ops.to_string()]));
    let b_per_second = b_report.count("ok") as f64 / start.elapsed().as_secs_f64();
    let (a_ops, a_per_second) = match flooding {
        Some(child) => {
            std::fs::write(&stop, b"").unwrap();
            let (a_report, _) = LoadReport::collect(child);
            let elapsed = start.elapsed().as_secs_f64();
            assert_eq!(a_report.others_than("ok"), 0, "{a_report:?}");
            (a_report.count("ok"), a_report.count("ok") as f64 / elapsed)
        }
        None => (0, 0.0),
    };
    assert_eq!(b_report.others_than("ok"), 0, "{b_report:?}");
    Row {
        name,
        b: b_report,
        b_per_second,
        a_ops,
        a_per_second,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ops = ops_arg(400);
    let da = DaParameters {
        max_tries: 32,
        recovery_time_s: 7200,
        lockout_recovery_s: 86400,
    };
    let env = SharedTpm::start(da, &[], &[]).await;
    let a = env.user("ba");
    let b = env.user("bb");
    let proxy = env.root_proxy().await;
    let mut files = Vec::new();
    for _ in 0..2 {
        files.push(
            proxy
                .generate("rsa2048", &[], tpmd_api::dbus::GenerateOptions::default())
                .await
                .unwrap(),
        );
    }
    let (a_file, b_file) = (files[0].clone(), files[1].clone());
    let a_key = a.write("rsa.tpm", &a_file);
    let b_key = b.write("rsa.tpm", &b_file);
    let (a_key, b_key) = (
        a_key.to_str().unwrap().to_string(),
        b_key.to_str().unwrap().to_string(),
    );
    // Warm-up: both keys loaded once.
    for file in [&a_file, &b_file] {
        tpmd_tests::calls::sign(
            &proxy,
            file,
            &[],
            tpmd_api::dbus::scheme::RSA_PKCS1,
            "sha256",
            &[0; 32],
        )
        .await
        .unwrap();
    }

    let sign_flood = |parallel: &str| {
        Some(
            ["--key", &a_key, "--parallel", parallel]
                .map(String::from)
                .to_vec(),
        )
    };
    let rows = [
        measure(&env, &a, &b, &b_key, ops, "B alone", None),
        measure(
            &env,
            &a,
            &b,
            &b_key,
            ops,
            "B, A with 64 signatures in flight",
            sign_flood("64"),
        ),
        measure(
            &env,
            &a,
            &b,
            &b_key,
            ops,
            "B, A with 1000 signatures in flight",
            sign_flood("1000"),
        ),
        measure(
            &env,
            &a,
            &b,
            &b_key,
            ops / 4,
            "B, A generating RSA-2048, 4 at once",
            Some(
                ["--generate", "rsa2048", "--parallel", "4"]
                    .map(String::from)
                    .to_vec(),
            ),
        ),
    ];
    let alone = (
        ms(rows[0].b.latency_us("p50")),
        ms(rows[0].b.latency_us("p99")),
    );
    println!(
        "uid B's RSA-2048 signatures (one at a time, {ops} per row; {} in the generation row) while uid A floods tpmd; ratio = B's latency over B alone",
        ops / 4
    );
    println!(
        "{:<38} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "", "B sig/s", "p50 ms", "p99 ms", "p50 ×", "p99 ×", "A ops/s"
    );
    for row in &rows {
        let (p50, p99) = (ms(row.b.latency_us("p50")), ms(row.b.latency_us("p99")));
        println!(
            "{:<38} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10}",
            row.name,
            row.b_per_second,
            p50,
            p99,
            p50 / alone.0,
            p99 / alone.1,
            if row.a_ops > 0 {
                format!("{:.1}", row.a_per_second)
            } else {
                "-".into()
            },
        );
    }
    let counters = proxy.get_counters().await.unwrap();
    println!(
        "resource manager: requests {} hits {} loads {} context loads {} evictions {}",
        counters.requests.unwrap_or(0),
        counters.hits.unwrap_or(0),
        counters.loads.unwrap_or(0),
        counters.context_loads.unwrap_or(0),
        counters.evictions.unwrap_or(0),
    );
}
