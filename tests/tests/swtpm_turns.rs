//! swtpm serves one client at a time, and tpmd holds its connection through a burst of
//! commands. Other programs must still get their turn: when tpmd goes idle, and in the
//! middle of a burst that does not stop; on a TPM 2.0 and on a TPM 1.2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_tests::{Family, TestEnv};

/// Long enough for any machine; a hang (tpmd never letting go) is what this catches.
const HANG: Duration = Duration::from_secs(60);

/// GetRandom sent straight to swtpm on one connection, as libtss2's swtpm TCTI sends
/// each command of another program on the machine.
async fn another_program_reaches_swtpm(env: &TestEnv, family: Family) {
    let port = env.sim.port();
    let command: Vec<u8> = match family {
        // TPM2_GetRandom(16)
        Family::Tpm2 => vec![0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 16],
        // TPM_GetRandom(16)
        Family::Tpm12 => vec![0, 0xC1, 0, 0, 0, 14, 0, 0, 0, 0x46, 0, 0, 0, 16],
    };
    let call = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(&command).unwrap();
        let mut header = [0u8; 10];
        stream.read_exact(&mut header).unwrap();
        assert_eq!(
            &header[6..10],
            &[0, 0, 0, 0],
            "GetRandom failed: {header:02x?}"
        );
    });
    tokio::time::timeout(HANG, call)
        .await
        .expect("swtpm stayed held by tpmd")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tpm2_other_programs_reach_swtpm_when_tpmd_is_idle_and_during_a_burst() {
    other_programs_take_turns(Family::Tpm2, "ecc-p256", scheme::ECDSA).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tpm12_other_programs_reach_swtpm_when_tpmd_is_idle_and_during_a_burst() {
    other_programs_take_turns(Family::Tpm12, "rsa1024", scheme::RSA_PKCS1).await;
}

async fn other_programs_take_turns(family: Family, key_type: &str, sign_scheme: &'static str) {
    let env = TestEnv::start_family(family).await;
    let proxy = env.proxy().await;
    let key = proxy
        .generate(key_type, &[], GenerateOptions::default())
        .await
        .unwrap();
    let digest = Sha256::digest(b"turns");
    tpmd_tests::calls::sign(&proxy, &key, &[], sign_scheme, "sha256", &digest)
        .await
        .unwrap();
    another_program_reaches_swtpm(&env, family).await;

    let stop = Arc::new(AtomicBool::new(false));
    let signed = Arc::new(AtomicUsize::new(0));
    let burst = {
        let (proxy, key, stop, signed) = (proxy.clone(), key.clone(), stop.clone(), signed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                tpmd_tests::calls::sign(&proxy, &key, &[], sign_scheme, "sha256", &digest)
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
        another_program_reaches_swtpm(&env, family).await;
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
    another_program_reaches_swtpm(&env, family).await;
}
