//! Crash-only: a panic anywhere in tpmd, the TPM thread included, ends the process with a
//! logged reason and a non-zero status (so systemd restarts it), instead of leaving a
//! daemon that runs but cannot serve. Debug builds of tpmd panic on request
//! (TPMD_DEBUG_PANIC) for this test; release builds do not have that trigger, so the
//! test exists only in debug builds (the suite's).

#![cfg(debug_assertions)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tpmd_simulator::Simulator;
use tpmd_tests::{PrivateBus, TpmdProcess};

/// EX_SOFTWARE, tpmd's exit status after a panic (tpmd::crash::PANIC_EXIT_CODE).
const PANIC_EXIT: i32 = 70;

async fn panics_at(place: &str, thread: &str) {
    let sim = Simulator::start_temporary().unwrap();
    let bus = PrivateBus::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let transport = sim.transport().to_string();
    let mut tpmd = TpmdProcess::start_with_env(
        &bus,
        &["--tpm", &transport],
        &[("TPMD_DEBUG_PANIC", place)],
        dir.path().join("tpmd.log"),
    )
    .await
    .unwrap();
    // It serves until the panic: the bus name is claimed, then a request panics.
    let conn = bus.connect().await.unwrap();
    let proxy = tpmd_api::Daemon1Proxy::new(&conn).await.unwrap();
    assert!(proxy.get_counters().await.is_err());
    let status = tpmd
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("tpmd kept running after a panic on {place}"));
    assert_eq!(status.code(), Some(PANIC_EXIT), "{}", tpmd.log_text());
    let log = tpmd.log_text();
    assert!(
        log.contains(&format!("panic on thread {thread}"))
            && log.contains("TPMD_DEBUG_PANIC")
            && log.contains("exiting so that systemd restarts tpmd"),
        "{log}"
    );
    // And a new tpmd starts at once on the same TPM.
    let again = TpmdProcess::start(&bus, &transport, &[], dir.path().join("again.log")).await;
    assert!(again.is_ok(), "{:?}", again.err());
}

#[tokio::test]
async fn a_panic_on_the_tpm_thread_ends_tpmd() {
    panics_at("tpm-thread", "tpm").await;
}

#[tokio::test]
async fn a_panic_in_a_dbus_task_ends_tpmd() {
    // Method calls run on the main thread's single-threaded runtime.
    panics_at("dbus-task", "main").await;
}
