//! One user cannot hurt another (issue 9): two real uids on one tpmd, serving a private
//! bus with the project's system D-Bus policy, on a simulator with maxTries 5 and a
//! recoveryTime long enough that a lockout could not heal during a test. Uid A sends a
//! thousand wrong auth values; uid B signs throughout. Fairness is counted in TPM jobs,
//! never timed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::DaemonError;
use tpmd_tests::multi_user::{DaParameters, LoadReport, SharedTpm};
use tpmd_tests::tools::ok;

const MAX_TRIES: u32 = 5;
/// tpmd's share for one uid at maxTries 5 (README: max(1, ceil((4 - 1) / 2))).
const SHARE: u64 = 2;

const LONG: DaParameters = DaParameters {
    max_tries: MAX_TRIES,
    recovery_time_s: 600,
    lockout_recovery_s: 600,
};

/// Reads GetInfo in a loop until stopped; the highest failed-tries count seen and whether
/// lockout was ever reported.
fn watch_da(
    env: &SharedTpm,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<(u32, bool, u32)>, Arc<AtomicU32>) {
    let reads = Arc::new(AtomicU32::new(0));
    let counted = reads.clone();
    let address = env.bus.address().to_string();
    let task = tokio::spawn(async move {
        let conn = zbus::connection::Builder::address(address.as_str())
            .build()
            .await
            .unwrap();
        let proxy = tpmd_api::Daemon1Proxy::new(&conn).await.unwrap();
        let (mut highest, mut lockout, mut max_tries) = (0, false, 0);
        while !stop.load(Ordering::Relaxed) {
            let info = proxy.get_info().await.unwrap();
            highest = highest.max(info.da_failed_tries.unwrap());
            max_tries = info.da_max_tries.unwrap();
            lockout |= info.lockout.unwrap();
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (highest, lockout, max_tries)
    });
    (task, reads)
}

async fn in_background(child: std::process::Child) -> (LoadReport, LoadReport) {
    tokio::task::spawn_blocking(move || LoadReport::collect(child))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_wrong_auth_values_from_one_user_never_lock_the_tpm_for_another() {
    let env = SharedTpm::start(LONG, &[], &[]).await;
    let a = env.user("fa");
    let b = env.user("fb");
    let a_pin = env.key_for(&a, "a-pin.tpm", b"right-a").await;
    let a_plain = env.key_for(&a, "a-plain.tpm", b"").await;
    a.write("wrong", b"wrong");
    let b_pin = env.key_for(&b, "b-pin.tpm", b"right-b").await;
    let b_plain = env.key_for(&b, "b-plain.tpm", b"").await;
    let stop_file = b.dir.join("stop");
    let p = |p: &std::path::Path| p.to_str().unwrap().to_string();

    let stop_watch = Arc::new(AtomicBool::new(false));
    let (watch, reads) = watch_da(&env, stop_watch.clone());
    // B signs with both its keys from before A starts until after A is done.
    let b_pin_auth = p(&b_pin.with_extension("tpm.auth"));
    let (b_pin, b_plain, stop) = (p(&b_pin), p(&b_plain), p(&stop_file));
    let until = [
        "--ops",
        "0",
        "--until-file",
        stop.as_str(),
        "--parallel",
        "2",
    ];
    let b_runs = [
        vec!["--key", b_pin.as_str(), "--auth-file", b_pin_auth.as_str()],
        vec!["--key", b_plain.as_str()],
    ]
    .map(|mut args| {
        args.extend(until);
        env.load(&b, &args)
    });

    // A: 1000 wrong values, in sequence, in parallel bursts of 16, and interleaved with
    // successful signatures of its key without an auth value.
    let wrong = p(&a.dir.join("wrong"));
    let a_key = p(&a_pin);
    let base = ["--key", a_key.as_str(), "--auth-file", wrong.as_str()];
    let plain = p(&a_plain);
    let phases: [Vec<&str>; 3] = [
        vec!["--ops", "334"],
        vec!["--ops", "333", "--parallel", "16"],
        vec!["--ops", "333", "--interleave-key", &plain],
    ];
    let mut a_reports = Vec::new();
    for phase in phases {
        let args: Vec<&str> = base.iter().copied().chain(phase).collect();
        a_reports.push(in_background(env.load(&a, &args)).await);
    }
    // The clear refusal reaches A's real client too.
    let keyctl = env.keyctl(
        &a,
        &["sign", "-k", &a_key, "-i", &wrong, "--auth-file", &wrong],
    );

    std::fs::write(&stop_file, b"").unwrap();
    let mut b_reports = Vec::new();
    for run in b_runs {
        b_reports.push(in_background(run).await.0);
    }
    stop_watch.store(true, Ordering::Relaxed);
    let (highest, ever_locked, max_tries) = watch.await.unwrap();
    let proxy = env.root_proxy().await;
    let info = proxy.get_info().await.unwrap();
    let counters = proxy.get_counters().await.unwrap();
    let log = env.tpmd.log_text();

    // The TPM was never in lockout: tpmd saw no TPM_RC_LOCKOUT, and the counter read
    // through GetInfo during and after the run stayed below maxTries.
    assert_eq!(counters.lockout_answers, Some(0), "{log}");
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(max_tries, MAX_TRIES);
    assert!(highest < MAX_TRIES, "counter reached {highest}");
    assert!(!ever_locked && info.lockout == Some(false), "{info:?}");
    assert!(info.da_failed_tries.unwrap() < MAX_TRIES, "{info:?}");
    // Only A's share of wrong values reached the TPM; every other one was refused.
    assert_eq!(counters.auth_failures, Some(SHARE), "{counters:?}");
    let wrong_sent: u64 = a_reports
        .iter()
        .map(|(main, _)| main.count("auth-failed"))
        .sum();
    let refused: u64 = a_reports
        .iter()
        .map(|(main, _)| main.count("rate-limited"))
        .sum();
    assert_eq!(wrong_sent, SHARE);
    assert_eq!(wrong_sent + refused, 1000, "{a_reports:?}");
    for (main, _) in &a_reports[1..] {
        let message = main.message("rate-limited");
        assert!(
            message.starts_with("too many wrong auth values from your user")
                && message.contains("try again in"),
            "{message}"
        );
    }
    // A's successful signatures went on (and did not wipe its failures).
    let interleaved = &a_reports[2].1;
    assert_eq!(interleaved.count("ok"), 333, "{interleaved:?}");
    assert_eq!(interleaved.others_than("ok"), 0, "{interleaved:?}");
    // B's keys signed all the way through, with zero failures.
    for report in &b_reports {
        assert!(report.count("ok") > 0, "{report:?}");
        assert_eq!(report.others_than("ok"), 0, "{report:?}");
    }
    assert!(!keyctl.status.success());
    let stderr = String::from_utf8_lossy(&keyctl.stderr);
    assert!(
        stderr.contains("too many wrong auth values from your user")
            && stderr.contains("try again in")
            && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
}

#[tokio::test]
async fn the_right_pin_works_again_once_the_users_window_has_passed() {
    let quick = DaParameters {
        max_tries: MAX_TRIES,
        recovery_time_s: 2,
        lockout_recovery_s: 2,
    };
    let env = SharedTpm::start(quick, &[], &[]).await;
    let a = env.user("wa");
    let key = env.key_for(&a, "pin.tpm", b"right").await;
    a.write("wrong", b"wrong");
    let key = key.to_str().unwrap();
    let sign = |auth: &str| env.keyctl(&a, &["sign", "-k", key, "-i", auth, "--auth-file", auth]);
    for _ in 0..SHARE {
        let out = sign("wrong");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("wrong auth value"),
            "{out:?}"
        );
    }
    // The share is used: even the right PIN waits, and a success would not erase the
    // failures anyway.
    let refused = sign("pin.tpm.auth");
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    let wait: u64 = stderr
        .split("try again in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait in {stderr}"));
    assert!(wait <= 2 * u64::from(quick.recovery_time_s) + 1, "{stderr}");
    std::thread::sleep(Duration::from_secs(wait));
    ok(&sign("pin.tpm.auth"));
}

#[tokio::test]
async fn failure_records_survive_a_tpmd_crash() {
    let mut env = SharedTpm::start(LONG, &[], &[]).await;
    let a = env.user("ra");
    let b = env.user("rb");
    let a_key = env.key_for(&a, "pin.tpm", b"right-a").await;
    let b_key = env.key_for(&b, "pin.tpm", b"right-b").await;
    a.write("wrong", b"wrong");
    let (a_key, b_key) = (a_key.to_str().unwrap(), b_key.to_str().unwrap());
    let sign = |env: &SharedTpm, user, key: &str, auth: &str| {
        env.keyctl(user, &["sign", "-k", key, "-i", auth, "--auth-file", auth])
    };
    for _ in 0..SHARE {
        assert!(!sign(&env, &a, a_key, "wrong").status.success());
    }
    // kill -9: no orderly stop.
    env.tpmd.kill();
    env.restart(&[]).await;
    let after = sign(&env, &a, a_key, "pin.tpm.auth");
    assert!(
        String::from_utf8_lossy(&after.stderr)
            .contains("too many wrong auth values from your user"),
        "{after:?}"
    );
    ok(&sign(&env, &b, b_key, "pin.tpm.auth"));
    let info = env.root_proxy().await.get_info().await.unwrap();
    assert_eq!(info.da_failed_tries, Some(SHARE as u32), "{info:?}");
}

/// The log without terminal colour codes.
fn plain_text(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The "TPM job" lines the TPM thread logs at debug level for `uid`: (waited, backlog).
fn job_lines(log: &str, uid: u32) -> Vec<(u64, u64)> {
    let log = plain_text(log);
    let field = |line: &str, name: &str| -> u64 {
        line.split(&format!(" {name}="))
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    log.lines()
        .filter(|l| l.contains("TPM job") && l.contains(&format!(" uid={uid} ")))
        .map(|l| (field(l, "waited"), field(l, "backlog")))
        .collect()
}

const WORKER_DEBUG: (&str, &str) = ("TPMD_LOG", "info,tpmd::backend::worker=debug");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_thousand_signatures_of_one_user_queued_another_waits_for_one_job() {
    let env = SharedTpm::start(LONG, &[], &[WORKER_DEBUG]).await;
    let a = env.user("qa");
    let b = env.user("qb");
    let a_key = env.key_for(&a, "plain.tpm", b"").await;
    let b_key = env.key_for(&b, "plain.tpm", b"").await;
    let flood = env.load(
        &a,
        &[
            "--key",
            a_key.to_str().unwrap(),
            "--ops",
            "1000",
            "--parallel",
            "1000",
        ],
    );
    // Until A has hundreds of jobs queued...
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !job_lines(&env.tpmd.log_text(), a.uid)
        .iter()
        .any(|(_, backlog)| *backlog >= 500)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "A never queued 500 jobs"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...B signs once.
    let (single, _) = in_background(env.load(&b, &["--key", b_key.to_str().unwrap()])).await;
    let (flooded, _) = in_background(flood).await;
    assert_eq!(single.count("ok"), 1, "{single:?}");
    assert_eq!(flooded.count("ok"), 1000, "{flooded:?}");
    let log = env.tpmd.log_text();
    let b_jobs = job_lines(&log, b.uid);
    assert_eq!(b_jobs.len(), 1, "{log}");
    let (waited, backlog) = b_jobs[0];
    // One other uid had work: B waited for at most one of its jobs, while A still had
    // hundreds queued.
    assert!(waited <= 1, "B waited for {waited} jobs");
    assert!(
        backlog >= 100,
        "A's backlog was only {backlog} when B was served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_runs_one_at_a_time_per_user_and_a_full_queue_says_busy() {
    let env = SharedTpm::start(LONG, &["--queue-per-user", "8"], &[WORKER_DEBUG]).await;
    let a = env.user("ga");
    let b = env.user("gb");
    let b_key = env.key_for(&b, "plain.tpm", b"").await;
    // A asks for eight RSA keys at once.
    let generators: Vec<_> = (0..8)
        .map(|i| {
            env.keyctl_command(
                &a,
                &["generate", "-t", "rsa2048", "-o", &format!("k{i}.tpm")],
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while job_lines(&env.tpmd.log_text(), a.uid).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "A's generations never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (single, _) = in_background(env.load(&b, &["--key", b_key.to_str().unwrap()])).await;
    for g in generators {
        let out = g.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(single.count("ok"), 1, "{single:?}");
    let log = env.tpmd.log_text();
    // Never more than one of A's generations held a place in the TPM queue.
    for (_, backlog) in job_lines(&log, a.uid) {
        assert!(backlog <= 1, "{log}");
    }
    let (waited, _) = job_lines(&log, b.uid)[0];
    assert!(waited <= 1, "B waited for {waited} jobs");

    // Past its bound, a user's calls are told to retry; others are not affected.
    let a_key = env.key_for(&a, "plain.tpm", b"").await;
    let (flood, _) = in_background(env.load(
        &a,
        &[
            "--key",
            a_key.to_str().unwrap(),
            "--ops",
            "256",
            "--parallel",
            "64",
        ],
    ))
    .await;
    assert!(flood.count("busy") > 0, "{flood:?}");
    assert_eq!(flood.count("busy") + flood.count("ok"), 256, "{flood:?}");
    let message = flood.message("busy");
    assert!(
        message.contains("busy") && message.contains("retry"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unorderly_resets_are_counted_and_keys_without_auth_never_fail() {
    let env = SharedTpm::start(LONG, &[], &[]).await;
    let proxy = env.root_proxy().await;
    let plain: Vec<Vec<u8>> = {
        let mut keys = Vec::new();
        for _ in 0..3 {
            keys.push(
                proxy
                    .generate("ecc-p256", &[], GenerateOptions::default())
                    .await
                    .unwrap(),
            );
        }
        keys
    };
    let pin = proxy
        .generate("ecc-p256", b"pin", GenerateOptions::default())
        .await
        .unwrap();
    let digest = [7u8; 32];

    // Several clients sign with keys without auth throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for key in plain {
        let (stop, address) = (stop.clone(), env.bus.address().to_string());
        clients.push(tokio::spawn(async move {
            let conn = zbus::connection::Builder::address(address.as_str())
                .build()
                .await
                .unwrap();
            let proxy = tpmd_api::Daemon1Proxy::new(&conn).await.unwrap();
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match tpmd_tests::calls::sign(&proxy, &key, &[], scheme::ECDSA, "sha256", &digest)
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    // maxTries - 1 unorderly resets, each after a use of the PIN key: each counts.
    for reset in 1..MAX_TRIES {
        tpmd_tests::calls::sign(&proxy, &pin, b"pin", scheme::ECDSA, "sha256", &digest)
            .await
            .unwrap_or_else(|e| panic!("PIN key before reset {reset}: {e}"));
        // TPM_Init without a Shutdown: the TPM refuses everything until tpmd, which the
        // clients keep busy, sends Startup itself.
        env.sim.init_only().unwrap();
        // Let the clients get through the recovery before the next reset.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let (ok, failed) = client.await.unwrap();
        assert!(ok > 0);
        assert!(failed.is_empty(), "{failed:?}");
    }
    let info = proxy.get_info().await.unwrap();
    assert_eq!(info.da_failed_tries, Some(MAX_TRIES - 1), "{info:?}");
    assert_eq!(info.lockout, Some(false));
    // The budget knows: one more failure would lock the TPM, so even the right PIN (from
    // root, who may use the reserve) is not risked, and the message names the cause.
    let refused = tpmd_tests::calls::sign(&proxy, &pin, b"pin", scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap_err();
    match refused {
        DaemonError::RateLimited(m) => {
            assert!(
                m.contains("4 of 5") && m.contains("unorderly TPM resets"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    let counters = proxy.get_counters().await.unwrap();
    assert!(counters.resets_recovered.unwrap() >= 1, "{counters:?}");
    assert_eq!(counters.lockout_answers, Some(0));
    assert_eq!(counters.auth_failures, Some(0));
}

#[tokio::test]
async fn lockout_is_shown_as_the_tpm_reports_it() {
    // maxTries 2: one wrong value from root plus one unorderly reset lock the TPM.
    let tight = DaParameters {
        max_tries: 2,
        recovery_time_s: 600,
        lockout_recovery_s: 600,
    };
    let env = SharedTpm::start(tight, &[], &[]).await;
    let proxy = env.root_proxy().await;
    let pin = proxy
        .generate("ecc-p256", b"pin", GenerateOptions::default())
        .await
        .unwrap();
    let plain = proxy
        .generate("ecc-p256", &[], GenerateOptions::default())
        .await
        .unwrap();
    let digest = [1u8; 32];
    let e = tpmd_tests::calls::sign(&proxy, &pin, b"wrong", scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap_err();
    assert!(matches!(e, DaemonError::AuthFailed(_)), "{e:?}");
    env.sim.reset().unwrap();
    // tpmd notices the reset on its next use of a loaded key.
    tpmd_tests::calls::sign(&proxy, &plain, &[], scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap();

    let info = proxy.get_info().await.unwrap();
    assert_eq!(info.lockout, Some(true), "{info:?}");
    assert_eq!(info.da_failed_tries, Some(2));
    assert_eq!(info.da_max_tries, Some(2));
    assert_eq!(info.da_recovery_time, Some(600));
    assert!(info.lockout_ends_in.is_some_and(|s| s <= 600), "{info:?}");
    // The same through tpm2-tools, beside tpmd.
    let getcap = std::process::Command::new("tpm2_getcap")
        .arg("properties-variable")
        .env("TPM2TOOLS_TCTI", format!("swtpm:port={}", env.sim.port()))
        .output()
        .unwrap();
    let getcap = String::from_utf8_lossy(&getcap.stdout);
    assert!(getcap.contains("inLockout:                 1"), "{getcap}");
    assert!(getcap.contains("TPM2_PT_LOCKOUT_COUNTER: 0x2"), "{getcap}");

    let text = env.keyctl(&env.user("la"), &["info"]);
    let text = ok(&text);
    assert!(
        text.contains("lockout:       IN LOCKOUT (failed tries 2 of 2; ends in at most"),
        "{text}"
    );
    // A key with an auth value gets the truth; a key without (noDA) still signs.
    match tpmd_tests::calls::sign(&proxy, &pin, b"pin", scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap_err()
    {
        DaemonError::Lockout(m) => assert!(
            m.contains("2 of 2") && m.contains("unorderly TPM resets both count"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    tpmd_tests::calls::sign(&proxy, &plain, &[], scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap();
    // Clearing it changes the TPM for everyone: a normal user may not.
    let user_reset = env.keyctl(&env.user("lb"), &["reset-lockout"]);
    assert!(
        String::from_utf8_lossy(&user_reset.stderr).contains("run it as root"),
        "{user_reset:?}"
    );
    // Root may, given the lockout hierarchy's auth value (set here with tpm2-tools).
    let changeauth = std::process::Command::new("tpm2_changeauth")
        .args(["-c", "lockout", "lockout-secret"])
        .env("TPM2TOOLS_TCTI", format!("swtpm:port={}", env.sim.port()))
        .output()
        .unwrap();
    assert!(changeauth.status.success(), "{changeauth:?}");
    let secret = env.dir.path().join("lockout.auth");
    std::fs::write(&secret, "lockout-secret\n").unwrap();
    let root_keyctl = |args: &[&str]| {
        std::process::Command::new(tpmd_tests::binary("tpm-keyctl"))
            .args(args)
            .env(tpmd_api::dbus::ADDRESS_ENV, env.bus.address())
            .output()
            .unwrap()
    };
    ok(&root_keyctl(&[
        "reset-lockout",
        "--auth-file",
        secret.to_str().unwrap(),
    ]));
    let info = proxy.get_info().await.unwrap();
    assert_eq!(info.lockout, Some(false), "{info:?}");
    assert_eq!(info.da_failed_tries, Some(0), "{info:?}");
    // The budget saw the reset at once: the right PIN signs again.
    tpmd_tests::calls::sign(&proxy, &pin, b"pin", scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap();
}

#[tokio::test]
async fn on_a_tpm12_one_user_cannot_lock_the_tpm_either() {
    let env = SharedTpm::start_tpm12(&[]).await;
    let a = env.user("ta");
    let b = env.user("tb");
    let a_key = env.key_for(&a, "pin.tpm", b"right-a").await;
    let b_key = env.key_for(&b, "pin.tpm", b"right-b").await;
    a.write("wrong", b"wrong");
    let info = env.root_proxy().await.get_info().await.unwrap();
    let threshold = info.da_max_tries.expect("the 1.2 reports its threshold");
    let (a_key, b_key) = (a_key.to_str().unwrap(), b_key.to_str().unwrap());
    let b_auth = b.dir.join("pin.tpm.auth");
    let (a_report, _) = in_background(env.load(
        &a,
        &[
            "--key",
            a_key,
            "--auth-file",
            "wrong",
            "--ops",
            "50",
            "--parallel",
            "4",
        ],
    ))
    .await;
    let (b_report, _) = in_background(env.load(
        &b,
        &[
            "--key",
            b_key,
            "--auth-file",
            b_auth.to_str().unwrap(),
            "--ops",
            "20",
        ],
    ))
    .await;
    let proxy = env.root_proxy().await;
    let info = proxy.get_info().await.unwrap();
    let counters = proxy.get_counters().await.unwrap();
    assert!(info.da_failed_tries.unwrap() < threshold, "{info:?}");
    assert_eq!(info.lockout, Some(false));
    assert_eq!(counters.lockout_answers, Some(0));
    let share = u64::from((threshold - 1 - (threshold / 4).max(1)).div_ceil(2).max(1));
    assert_eq!(a_report.count("auth-failed"), share, "{a_report:?}");
    assert_eq!(a_report.count("rate-limited"), 50 - share, "{a_report:?}");
    assert!(a_report
        .message("rate-limited")
        .starts_with("too many wrong auth values from your user"));
    assert_eq!(b_report.count("ok"), 20, "{b_report:?}");
}
