//! The resource manager on the 3-slot simulator: many keys round-robin, a TPM reset in
//! the middle, many concurrent clients; zero failures and nothing left loaded after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_tests::TestEnv;
use tpmd_tpm2::transport::OpenEsys;
use tss_esapi::constants::CapabilityType;
use tss_esapi::structures::CapabilityData;

struct Key {
    file: Vec<u8>,
    verifier: VerifyingKey,
}

async fn make_keys(env: &TestEnv, n: usize) -> Vec<Key> {
    let proxy = env.proxy().await;
    let mut keys = Vec::new();
    for _ in 0..n {
        let file = proxy
            .generate("ecc-p256", &[], GenerateOptions::default())
            .await
            .unwrap();
        let spki = proxy.public_key(&file).await.unwrap();
        let verifier = VerifyingKey::from_public_key_der(&spki).unwrap();
        keys.push(Key { file, verifier });
    }
    keys
}

async fn sign_checked(proxy: &tpmd_api::Daemon1Proxy<'_>, key: &Key, message: &[u8]) {
    let digest = Sha256::digest(message);
    let raw = tpmd_tests::calls::sign(proxy, &key.file, &[], scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap_or_else(|e| panic!("sign failed: {e}"));
    let sig = Signature::from_slice(&raw).unwrap();
    key.verifier.verify_prehash(&digest, &sig).unwrap();
}

fn transient_handles(env: &TestEnv) -> usize {
    let mut ctx = env.sim.transport().open().unwrap();
    let (data, _) = ctx
        .get_capability(CapabilityType::Handles, 0x8000_0000, 64)
        .unwrap();
    match data {
        CapabilityData::Handles(list) => list.len(),
        _ => panic!("unexpected capability data"),
    }
}

/// Fifty keys signed in turn, twice, then across a TPM reset, then by sixteen clients at
/// once: every signature verifies, and tpmd keeps at most `max_loaded` keys loaded.
/// On a TPM tpmd owns, evicted keys come back from saved contexts.
async fn fifty_keys_round_robin(env: TestEnv, max_loaded: u64, owned: bool) -> TestEnv {
    let keys = make_keys(&env, 50).await;
    let proxy = env.proxy().await;

    for round in 0..2 {
        for (i, key) in keys.iter().enumerate() {
            sign_checked(&proxy, key, format!("round {round} key {i}").as_bytes()).await;
        }
    }
    let before = proxy.get_counters().await.unwrap();
    assert!(before.evictions.unwrap() > 0, "{before:?}");
    assert_eq!(before.context_loads.unwrap() > 0, owned, "{before:?}");

    // Power-cycle the TPM under tpmd's feet, then use the keys tpmd holds loaded first.
    env.sim.reset().unwrap();
    for (i, key) in keys.iter().enumerate().rev() {
        sign_checked(&proxy, key, format!("after reset {i}").as_bytes()).await;
    }
    let after = proxy.get_counters().await.unwrap();
    assert!(after.resets_recovered.unwrap() > 0, "{after:?}");

    // Sixteen clients, each on its own connection, all keys.
    let keys = std::sync::Arc::new(keys);
    let mut tasks = Vec::new();
    for client in 0..16 {
        let keys = keys.clone();
        let proxy = env.proxy().await;
        tasks.push(tokio::spawn(async move {
            for j in 0..12 {
                let key = &keys[(client * 3 + j * 7) % keys.len()];
                sign_checked(&proxy, key, format!("client {client} op {j}").as_bytes()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end = proxy.get_counters().await.unwrap();
    assert_eq!(end.failures, Some(0), "{end:?}");
    assert!(end.loaded_keys.unwrap() <= max_loaded, "{end:?}");
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_keys_round_robin_across_a_reset_and_sixteen_clients() {
    let mut env = fifty_keys_round_robin(TestEnv::start().await, 3, true).await;
    env.tpmd.stop();
    assert_eq!(
        transient_handles(&env),
        0,
        "tpmd left transient objects in the TPM"
    );
}

/// The same on the model of the kernel resource manager (/dev/tpmrm0), whose virtual
/// handles start at 0x80FFFFFF: every key on its own connection, several of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_keys_on_the_kernel_resource_manager() {
    use tpmd_simulator::proxy::ProxyOptions;
    let sim = tpmd_simulator::Simulator::start_temporary_with(ProxyOptions::kernel_rm()).unwrap();
    let env = TestEnv::start_on(sim, &["--max-loaded-keys", "8"]).await;
    let env = fifty_keys_round_robin(env, 8, false).await;
    let counters = env.proxy().await.get_counters().await.unwrap();
    assert!(counters.loaded_keys.unwrap() > 1, "{counters:?}");
}

#[tokio::test]
async fn a_restarted_tpmd_reloads_from_blobs() {
    let mut env = TestEnv::start().await;
    let keys = make_keys(&env, 4).await;
    let proxy = env.proxy().await;
    sign_checked(&proxy, &keys[0], b"before").await;
    env.restart_tpmd(&[]).await;
    let proxy = env.proxy().await;
    for key in &keys {
        sign_checked(&proxy, key, b"after restart").await;
    }
}

/// After a reset the TPM hands out handle numbers our stale handles still carry; a new
/// key loaded first must not be signed with in place of an old one.
#[tokio::test]
async fn a_reset_never_mixes_up_keys() {
    let env = TestEnv::start().await;
    let old = make_keys(&env, 3).await;
    let proxy = env.proxy().await;
    for key in &old {
        sign_checked(&proxy, key, b"before").await;
    }
    env.sim.reset().unwrap();
    let new = make_keys(&env, 2).await;
    for key in new.iter().chain(old.iter()).chain(new.iter()) {
        sign_checked(&proxy, key, b"after").await;
    }
}

/// The simulator process itself restarts under tpmd (same state, same port): tpmd
/// reconnects and reloads from blobs; the caller sees no failure.
#[tokio::test]
async fn a_restarted_simulator_is_reconnected() {
    use tpmd_simulator::{Family, Simulator, SimulatorOptions};
    let dir = tempfile::tempdir().unwrap();
    let options = |port| SimulatorOptions {
        family: Family::Tpm2,
        state_dir: dir.path().join("state"),
        port,
        provision_srk: true,
    };
    let sim = Simulator::start(options(None)).unwrap();
    let port = sim.port();
    let env = TestEnv::start_on(sim, &[]).await;
    let keys = make_keys(&env, 2).await;
    let proxy = env.proxy().await;
    sign_checked(&proxy, &keys[0], b"before").await;

    let TestEnv {
        tpmd,
        bus,
        sim,
        dir: env_dir,
    } = env;
    sim.stop().unwrap();
    let restarted = Simulator::start(options(Some(port))).unwrap();
    for key in &keys {
        sign_checked(&proxy, key, b"after the simulator restarted").await;
    }
    let counters = proxy.get_counters().await.unwrap();
    assert!(counters.resets_recovered.unwrap() > 0, "{counters:?}");
    drop((tpmd, bus, restarted, env_dir));
}
