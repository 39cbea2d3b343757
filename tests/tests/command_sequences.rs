//! The exact TPM commands behind each kind of signature, on each transport, as they
//! reach the TPM: tpmd on a TPM it owns (a simulator behind a recording proxy, as on
//! /dev/tpm0) and on the model of the kernel resource manager (/dev/tpmrm0), for a first
//! use, a hot signature, a signature after eviction and one after a TPM reset, with and
//! without an auth value, and with a PCR policy or a signed policy (a policy session per
//! signature).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod policy_keys;

use policy_keys::{pcr_policy, policy_key, Owner};
use sha2::{Digest, Sha256};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::keyfile::TpmKeyFile;
use tpmd_api::policy::{auth_value_statement, authorize_statement};
use tpmd_simulator::proxy::ProxyOptions;
use tpmd_simulator::Simulator;
use tpmd_tests::TestEnv;
use tpmd_tpm2::wire::cc;

/// The names of the commands that reached the TPM since the last call, and forgets them.
/// A Sign repeated at once is the kernel's own resend after TPM_RC_RETRY (which swtpm
/// answers to the first use of a dictionary-attack-protected key after a start), not
/// tpmd's doing, so it is counted once.
fn reached(env: &TestEnv) -> Vec<String> {
    let proxy = env.sim.proxy().expect("a proxy");
    let mut sequence: Vec<String> = proxy.sequence().into_iter().map(cc::name).collect();
    proxy.reset_counts();
    sequence.dedup_by(|a, b| a == b && a == "Sign");
    sequence
}

/// [`reached`], once at least `count` commands have reached the TPM (or a few seconds
/// have passed): the kernel flushes a closed connection's sessions on its own time.
async fn reached_at_least(env: &TestEnv, count: usize) -> Vec<String> {
    let proxy = env.sim.proxy().expect("a proxy");
    for _ in 0..300 {
        if proxy.sequence().len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    reached(env)
}

/// Whether `got` is `want` with one `extra` inserted anywhere: a command the kernel sends
/// when it notices a closed connection, on its own time.
fn with_one_more(got: &[String], want: &[&str], extra: &str) -> bool {
    (0..got.len()).any(|i| {
        got[i] == extra && {
            let mut rest = got.to_vec();
            rest.remove(i);
            rest == names(want)
        }
    })
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn start(kernel_rm: bool, extra: &[&str]) -> TestEnv {
    let options = if kernel_rm {
        ProxyOptions::kernel_rm()
    } else {
        ProxyOptions::raw_device()
    };
    let sim = Simulator::start_temporary_with(options).unwrap();
    TestEnv::start_on(sim, extra).await
}

struct Keys {
    plain: Vec<u8>,
    pin: Vec<u8>,
}

async fn keys(env: &TestEnv) -> Keys {
    let proxy = env.proxy().await;
    let plain = proxy
        .generate("ecc-p256", &[], GenerateOptions::default())
        .await
        .unwrap();
    let pin = proxy
        .generate("ecc-p256", b"1234", GenerateOptions::default())
        .await
        .unwrap();
    Keys { plain, pin }
}

async fn sign(env: &TestEnv, key: &[u8], auth: &[u8]) {
    let digest = Sha256::digest(b"sequence");
    let proxy = env.proxy().await;
    tpmd_tests::calls::sign(&proxy, key, auth, scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap_or_else(|e| panic!("sign: {e}"));
}

const OWNED_FIRST: &[&str] = &["Load", "Sign"];
const OWNED_HOT: &[&str] = &["Sign"];
/// The kernel loads the connection's object before each command and saves and flushes
/// it afterwards.
const KERNEL_FIRST: &[&str] = &[
    "Load",
    "ContextSave",
    "FlushContext",
    "ContextLoad",
    "Sign",
    "ContextSave",
    "FlushContext",
];
const KERNEL_HOT: &[&str] = &["ContextLoad", "Sign", "ContextSave", "FlushContext"];
/// With an auth value the connection's session is swapped too (saved, not flushed).
const KERNEL_HOT_PIN: &[&str] = &[
    "ContextLoad",
    "ContextLoad",
    "Sign",
    "ContextSave",
    "FlushContext",
    "ContextSave",
];

#[tokio::test]
async fn owned_tpm_first_use_and_hot_signatures() {
    let env = start(false, &[]).await;
    let keys = keys(&env).await;
    reached(&env);
    sign(&env, &keys.plain, &[]).await;
    assert_eq!(reached(&env), names(OWNED_FIRST));
    for _ in 0..3 {
        sign(&env, &keys.plain, &[]).await;
        assert_eq!(reached(&env), names(OWNED_HOT));
    }
    // The salted session, started once (for the PIN key's creation), serves it.
    sign(&env, &keys.pin, b"1234").await;
    assert_eq!(reached(&env), names(OWNED_FIRST));
    sign(&env, &keys.pin, b"1234").await;
    assert_eq!(reached(&env), names(OWNED_HOT));
    // tpmd counts what it sends: one Sign per hot signature.
    let counters = env.proxy().await.get_counters().await.unwrap();
    let sent = counters.tpm_commands.unwrap();
    assert_eq!(sent.get("Sign"), Some(&6), "{sent:?}");
}

#[tokio::test]
async fn owned_tpm_after_eviction_and_after_a_reset() {
    let env = start(false, &["--max-loaded-keys", "1"]).await;
    let keys = keys(&env).await;
    sign(&env, &keys.plain, &[]).await;
    reached(&env);
    // The other key needs the only slot: the first is saved once and flushed.
    sign(&env, &keys.pin, b"1234").await;
    assert_eq!(
        reached(&env),
        names(&["ContextSave", "FlushContext", "Load", "Sign"])
    );
    // Back again: its saved context loads (and the other key is saved the same way).
    sign(&env, &keys.plain, &[]).await;
    assert_eq!(
        reached(&env),
        names(&["ContextSave", "FlushContext", "ContextLoad", "Sign"])
    );
    // Evicted a second time, its context is not saved again.
    sign(&env, &keys.pin, b"1234").await;
    assert_eq!(
        reached(&env),
        names(&["FlushContext", "ContextLoad", "Sign"])
    );

    env.sim.reset().unwrap();
    reached(&env);
    // The stale handle fails; tpmd sizes the budget again, reloads and signs. Then the
    // dictionary-attack budget reads the TPM's counter, as after every reset (an unorderly
    // reset counts as a failed try).
    sign(&env, &keys.pin, b"1234").await;
    let after_reset = reached(&env);
    assert_eq!(
        after_reset,
        names(&[
            "Sign",
            "GetCapability",
            "Load",
            "StartAuthSession",
            "Sign",
            "GetCapability"
        ]),
        "{after_reset:?}"
    );
}

#[tokio::test]
async fn kernel_rm_first_use_hot_and_pin_signatures() {
    let env = start(true, &[]).await;
    let keys = keys(&env).await;
    reached(&env);
    sign(&env, &keys.plain, &[]).await;
    assert_eq!(reached(&env), names(KERNEL_FIRST));
    for _ in 0..3 {
        sign(&env, &keys.plain, &[]).await;
        assert_eq!(reached(&env), names(KERNEL_HOT));
    }
    sign(&env, &keys.pin, b"1234").await;
    reached(&env);
    for _ in 0..3 {
        sign(&env, &keys.pin, b"1234").await;
        assert_eq!(reached(&env), names(KERNEL_HOT_PIN));
    }
    // Many keys cost nothing more per hot signature: each has its own connection.
    let proxy = env.proxy().await;
    let mut more = Vec::new();
    for _ in 0..5 {
        more.push(
            proxy
                .generate("ecc-p256", &[], GenerateOptions::default())
                .await
                .unwrap(),
        );
    }
    for key in &more {
        sign(&env, key, &[]).await;
    }
    reached(&env);
    for key in &more {
        sign(&env, key, &[]).await;
        assert_eq!(reached(&env), names(KERNEL_HOT));
    }
}

#[tokio::test]
async fn kernel_rm_after_eviction_and_after_a_reset() {
    let env = start(true, &["--max-loaded-keys", "1"]).await;
    let keys = keys(&env).await;
    sign(&env, &keys.plain, &[]).await;
    sign(&env, &keys.pin, b"1234").await;
    reached(&env);
    // The plain key's connection was closed for the PIN key's: it loads again.
    sign(&env, &keys.plain, &[]).await;
    let evicted = reached_at_least(&env, KERNEL_FIRST.len() + 1).await;
    // Closing the PIN key's connection makes the kernel flush its session.
    assert!(
        with_one_more(&evicted, KERNEL_FIRST, "FlushContext"),
        "{evicted:?}"
    );

    env.sim.reset().unwrap();
    reached(&env);
    // The kernel cannot load the connection's context after the reset, flushes what it
    // had loaded of the space and fails the connection; tpmd opens a new one and loads
    // the key again. The model's flush of the failed space can reach the TPM after the
    // new connection's first commands (a proxy thread serves each connection).
    sign(&env, &keys.plain, &[]).await;
    let after_reset = reached_at_least(&env, KERNEL_FIRST.len() + 2).await;
    let mut want = vec!["ContextLoad"];
    want.extend(KERNEL_FIRST);
    assert!(
        with_one_more(&after_reset, &want, "FlushContext"),
        "{after_reset:?}"
    );
}

/// Keys with policies: bound to PCR 16's current value, and to a signed policy (carried
/// in the key bytes) that approves it.
struct PolicyKeys {
    pcr: Vec<u8>,
    signed: Vec<u8>,
    /// PolicyPCR then PolicyAuthValue, with the auth value "1234".
    pcr_pin: Vec<u8>,
}

async fn policy_keys(env: &TestEnv) -> PolicyKeys {
    let proxy = env.proxy().await;
    let value = proxy.read_pcrs("sha256:16").await.unwrap().remove(0).2;
    let pcr = policy_key(&proxy, &[], vec![pcr_policy(&value)], None).await;
    let pcr_pin = policy_key(
        &proxy,
        b"1234",
        vec![pcr_policy(&value), auth_value_statement()],
        None,
    )
    .await;
    let owner = Owner::new();
    let signed = policy_key(
        &proxy,
        &[],
        vec![authorize_statement(&owner.public, b"", &[])],
        None,
    )
    .await;
    let mut file = TpmKeyFile::parse(&signed).unwrap();
    file.auth_policies = vec![owner.sign("now", &value, b"")];
    PolicyKeys {
        pcr,
        signed: file.to_pem().into_bytes(),
        pcr_pin,
    }
}

/// A hot signature with a PCR policy on a TPM tpmd owns: the policy session's start,
/// its one statement, and the signature it authorizes (and ends with).
const OWNED_PCR_FIRST: &[&str] = &["Load", "StartAuthSession", "PolicyPCR", "Sign"];
const OWNED_PCR_HOT: &[&str] = &["StartAuthSession", "PolicyPCR", "Sign"];
const OWNED_PCR_PIN_HOT: &[&str] = &["StartAuthSession", "PolicyPCR", "PolicyAuthValue", "Sign"];
/// With a signed policy: its statement, then PolicyAuthorize; the first use verifies the
/// owner's signature for a ticket (LoadExternal, VerifySignature, FlushContext), which
/// later uses take from the cache.
const OWNED_SIGNED_FIRST: &[&str] = &[
    "Load",
    "StartAuthSession",
    "PolicyPCR",
    "LoadExternal",
    "VerifySignature",
    "FlushContext",
    "PolicyAuthorize",
    "Sign",
];
const OWNED_SIGNED_HOT: &[&str] = &["StartAuthSession", "PolicyPCR", "PolicyAuthorize", "Sign"];
/// On /dev/tpmrm0 the policy session lives on the key's connection, so the kernel loads
/// the key (and, once started, the session) around every policy command, then saves and
/// flushes the key and saves the session.
const KERNEL_PCR_HOT: &[&str] = &[
    "ContextLoad",
    "StartAuthSession",
    "ContextSave",
    "FlushContext",
    "ContextSave",
    "ContextLoad",
    "ContextLoad",
    "PolicyPCR",
    "ContextSave",
    "FlushContext",
    "ContextSave",
    "ContextLoad",
    "ContextLoad",
    "Sign",
    "ContextSave",
    "FlushContext",
    "ContextSave",
];
const KERNEL_SIGNED_HOT: &[&str] = &[
    "ContextLoad",
    "StartAuthSession",
    "ContextSave",
    "FlushContext",
    "ContextSave",
    "ContextLoad",
    "ContextLoad",
    "PolicyPCR",
    "ContextSave",
    "FlushContext",
    "ContextSave",
    "ContextLoad",
    "ContextLoad",
    "PolicyAuthorize",
    "ContextSave",
    "FlushContext",
    "ContextSave",
    "ContextLoad",
    "ContextLoad",
    "Sign",
    "ContextSave",
    "FlushContext",
    "ContextSave",
];

#[tokio::test]
async fn owned_tpm_policy_signatures() {
    let env = start(false, &[]).await;
    let keys = policy_keys(&env).await;
    reached(&env);
    sign(&env, &keys.pcr, &[]).await;
    assert_eq!(reached(&env), names(OWNED_PCR_FIRST));
    for _ in 0..3 {
        sign(&env, &keys.pcr, &[]).await;
        assert_eq!(reached(&env), names(OWNED_PCR_HOT));
    }
    sign(&env, &keys.signed, &[]).await;
    assert_eq!(reached(&env), names(OWNED_SIGNED_FIRST));
    for _ in 0..3 {
        sign(&env, &keys.signed, &[]).await;
        assert_eq!(reached(&env), names(OWNED_SIGNED_HOT));
    }
    // After a TPM reset the key's handle is stale: the Sign fails, its policy session is
    // flushed (a failed command does not end it), and the retry loads the key again and
    // verifies the owner's signature again, as the reset dropped the cached tickets.
    env.sim.reset().unwrap();
    reached(&env);
    sign(&env, &keys.signed, &[]).await;
    let mut want = names(OWNED_SIGNED_HOT);
    want.extend(names(&["FlushContext", "GetCapability"]));
    want.extend(names(OWNED_SIGNED_FIRST));
    assert_eq!(reached(&env), want);
    sign(&env, &keys.signed, &[]).await;
    assert_eq!(reached(&env), names(OWNED_SIGNED_HOT));
    // With an auth value: PolicyAuthValue too, and the session salted (same commands).
    // Its first use evicts another key (two fit beside the SRK on swtpm).
    sign(&env, &keys.pcr_pin, b"1234").await;
    reached(&env);
    for _ in 0..2 {
        sign(&env, &keys.pcr_pin, b"1234").await;
        assert_eq!(reached(&env), names(OWNED_PCR_PIN_HOT));
    }
}

#[tokio::test]
async fn kernel_rm_policy_signatures() {
    let env = start(true, &[]).await;
    let keys = policy_keys(&env).await;
    for key in [&keys.pcr, &keys.signed] {
        sign(&env, key, &[]).await;
    }
    reached_at_least(&env, 1).await;
    for _ in 0..3 {
        sign(&env, &keys.pcr, &[]).await;
        assert_eq!(reached(&env), names(KERNEL_PCR_HOT));
        sign(&env, &keys.signed, &[]).await;
        assert_eq!(reached(&env), names(KERNEL_SIGNED_HOT));
    }
}
