//! swtpm serves one client at a time, and tpmd holds its connection through a burst of
//! commands. Other programs must still get their turn: when tpmd goes idle, and in the
//! middle of a burst that does not stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_tests::TestEnv;
use tpmd_tpm2::tpm::Tpm;
use tpmd_tpm2::wire::ops;

/// Long enough for any machine; a hang (tpmd never letting go) is what this catches.
const HANG: Duration = Duration::from_secs(60);

/// TPM2_GetRandom sent straight to swtpm, as another program on the machine would.
async fn another_program_reaches_swtpm(env: &TestEnv) {
    let transport = env.sim.swtpm_transport();
    let call = tokio::task::spawn_blocking(move || {
        let mut tpm = Tpm::open(&transport, None).unwrap();
        let response = tpm.execute(&ops::get_random(16), &[]).unwrap();
        assert_eq!(response.rc, 0);
    });
    tokio::time::timeout(HANG, call)
        .await
        .expect("swtpm stayed held by tpmd")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn other_programs_reach_swtpm_when_tpmd_is_idle_and_during_a_burst() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;
    let key = proxy
        .generate("ecc-p256", &[], GenerateOptions::default())
        .await
        .unwrap();
    let digest = Sha256::digest(b"turns");
    proxy
        .sign(&key, &[], scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap();
    another_program_reaches_swtpm(&env).await;

    let stop = Arc::new(AtomicBool::new(false));
    let signed = Arc::new(AtomicUsize::new(0));
    let burst = {
        let (proxy, key, stop, signed) = (proxy.clone(), key.clone(), stop.clone(), signed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                proxy
                    .sign(&key, &[], scheme::ECDSA, "sha256", &digest)
                    .await
                    .unwrap();
                signed.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while signed.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..10 {
        another_program_reaches_swtpm(&env).await;
    }
    // ... and tpmd's burst goes on after them.
    let during = signed.load(Ordering::SeqCst);
    tokio::time::timeout(HANG, async {
        while signed.load(Ordering::SeqCst) <= during {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("tpmd signs again after the other program's turns");
    stop.store(true, Ordering::SeqCst);
    burst.await.unwrap();
    another_program_reaches_swtpm(&env).await;
}
