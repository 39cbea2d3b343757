//! Keys bound to PCRs, through tpmd over D-Bus on swtpm: a key bound to PCR 16 signs until
//! another client extends that PCR, then fails with an error naming it (and saying it
//! changed, from the values recorded in the key file) without counting as a wrong auth
//! value; a key bound to a signed policy works again once its owner signs the new value
//! and the policy file lands in tpmd's policy directory, with no re-wrap. Key files are
//! built with tpmd_api's policy functions, as tpm-keyctl builds them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod policy_keys;

use std::path::Path;

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use policy_keys::{
    engine_layout, extend_pcr, pcr_policy, policy_key, policy_key_of_type, policy_key_written_as,
    Owner, PCR,
};
use sha2::{Digest, Sha256};
use tpmd_api::auth_policy_file;
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::keyfile::{AuthPolicy, TpmKeyFile};
use tpmd_api::marshal::TPM_ALG_SHA256;
use tpmd_api::policy::{auth_value_statement, authorize_statement, or_statement, policy_digest};
use tpmd_api::recorded_pcrs::{with_recorded_values, RecordedBank};
use tpmd_api::{Daemon1Proxy, DaemonError, SoftwareKey, TpmPublic};
use tpmd_tests::{Family, TestEnv};

async fn pcr16(proxy: &Daemon1Proxy<'_>) -> Vec<u8> {
    let values = proxy.read_pcrs("sha256:16").await.unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!((values[0].0.as_str(), values[0].1), ("sha256", 16));
    values[0].2.clone()
}

/// Signs a digest and checks the signature with the key's public key.
async fn sign(proxy: &Daemon1Proxy<'_>, key: &[u8], auth: &[u8]) -> Result<(), DaemonError> {
    let digest = Sha256::digest(b"bound to the boot state");
    let signature =
        tpmd_tests::calls::sign(proxy, key, auth, scheme::ECDSA, "sha256", &digest).await?;
    let spki = proxy.public_key(key).await.unwrap();
    let verifying = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&signature).unwrap();
    verifying.verify_prehash(&digest, &signature).unwrap();
    Ok(())
}

fn policy_failed(result: Result<(), DaemonError>) -> String {
    match result {
        Err(DaemonError::PolicyFailed(message)) => {
            eprintln!("MSG {message}");
            message
        }
        other => panic!("expected PolicyFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_key_bound_to_pcr16_signs_until_the_pcr_changes() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;
    let value = pcr16(&proxy).await;
    let recorded = with_recorded_values(
        Some("test key"),
        &[RecordedBank {
            hash_alg: TPM_ALG_SHA256,
            values: vec![(PCR, value.clone())],
        }],
    );
    let key = policy_key(&proxy, &[], vec![pcr_policy(&value)], Some(recorded)).await;
    // Without recorded values, tpmd can name the selection but not what changed.
    let unrecorded = policy_key(&proxy, &[], vec![pcr_policy(&value)], None).await;
    // A key with an auth value as well: PolicyPCR then PolicyAuthValue.
    let with_pin = policy_key(
        &proxy,
        b"1234",
        vec![pcr_policy(&value), auth_value_statement()],
        None,
    )
    .await;
    let engine = policy_key_written_as(
        &proxy,
        &[],
        vec![pcr_policy(&value)],
        vec![engine_layout(&value)],
        None,
    )
    .await;
    sign(&proxy, &key, &[]).await.unwrap();
    sign(&proxy, &key, &[]).await.unwrap();
    sign(&proxy, &unrecorded, &[]).await.unwrap();
    sign(&proxy, &engine, &[]).await.unwrap();
    sign(&proxy, &with_pin, b"1234").await.unwrap();
    assert!(matches!(
        sign(&proxy, &with_pin, b"wrong").await,
        Err(DaemonError::AuthFailed(_))
    ));
    let before = proxy.get_counters().await.unwrap();

    extend_pcr(&env, b"another kernel");
    assert_ne!(pcr16(&proxy).await, value);
    let message = policy_failed(sign(&proxy, &key, &[]).await);
    assert!(message.contains("sha256:16"), "{message}");
    assert!(message.contains("changed: sha256:16"), "{message}");
    assert!(message.contains("signed policy"), "{message}");
    for key in [&unrecorded, &engine] {
        let message = policy_failed(sign(&proxy, key, &[]).await);
        assert!(message.contains("sha256:16"), "{message}");
        assert!(message.contains("records no expected values"), "{message}");
    }
    // The right auth value does not help, and a policy failure is not a wrong guess.
    policy_failed(sign(&proxy, &with_pin, b"1234").await);
    let after = proxy.get_counters().await.unwrap();
    assert_eq!(after.auth_failures, before.auth_failures);
    assert_eq!(after.auth_refused, before.auth_refused);
    let info = proxy.get_info().await.unwrap();
    assert_eq!(
        info.da_failed_tries,
        Some(1),
        "only the one wrong PIN counts"
    );
}

fn drop_policy(dir: &Path, file: &str, policy: &AuthPolicy) {
    std::fs::write(dir.join(file), auth_policy_file::to_pem(policy)).unwrap();
}

#[tokio::test]
async fn a_signed_policy_survives_a_pcr_change_without_rewrapping() {
    let policies = tempfile::tempdir().unwrap();
    let dir = policies.path().to_string_lossy().into_owned();
    let env = TestEnv::start_with(&["--policy-dir", &dir]).await;
    let proxy = env.proxy().await;
    let owner = Owner::new();
    let policy_ref = b"laptop";
    let key = policy_key(
        &proxy,
        &[],
        vec![authorize_statement(&owner.public, policy_ref, &[])],
        None,
    )
    .await;

    // No signed policy yet.
    let message = policy_failed(sign(&proxy, &key, &[]).await);
    assert!(
        message.contains("no authorized policy matches"),
        "{message}"
    );

    let value = pcr16(&proxy).await;
    drop_policy(
        policies.path(),
        "boot-1.policy",
        &owner.sign("boot 1", &value, policy_ref),
    );
    // A policy for another policyRef or by another owner is not even tried.
    drop_policy(
        policies.path(),
        "other-ref.policy",
        &owner.sign("other", &value, b"desktop"),
    );
    drop_policy(
        policies.path(),
        "other-owner.policy",
        &Owner::new().sign("stranger", &value, policy_ref),
    );
    sign(&proxy, &key, &[]).await.unwrap();
    sign(&proxy, &key, &[]).await.unwrap();

    extend_pcr(&env, b"kernel update");
    let message = policy_failed(sign(&proxy, &key, &[]).await);
    assert!(
        message.contains("no authorized policy matches"),
        "{message}"
    );
    assert!(message.contains("boot 1"), "{message}");
    assert!(message.contains("sha256:16"), "{message}");
    assert!(!message.contains("stranger"), "{message}");

    // The owner signs the new value; the key file is untouched.
    let new_value = pcr16(&proxy).await;
    drop_policy(
        policies.path(),
        "boot-2.policy",
        &owner.sign("boot 2", &new_value, policy_ref),
    );
    sign(&proxy, &key, &[]).await.unwrap();

    // A signed policy carried in the key bytes works without the directory.
    std::fs::remove_file(policies.path().join("boot-2.policy")).unwrap();
    let mut file = TpmKeyFile::parse(&key).unwrap();
    file.auth_policies = vec![owner.sign("in the file", &new_value, policy_ref)];
    sign(&proxy, file.to_pem().as_bytes(), &[]).await.unwrap();
}

#[tokio::test]
async fn read_pcrs_answers_in_selection_order_and_refuses_bad_selections() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;
    let values = proxy
        .read_pcrs("sha256:16,0,7,1,2,3,4,5,6,8,9+sha1:23")
        .await
        .unwrap();
    let order: Vec<(String, u32)> = values.iter().map(|(b, i, _)| (b.clone(), *i)).collect();
    let mut want: Vec<(String, u32)> = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16]
        .iter()
        .map(|i| ("sha256".to_string(), *i))
        .collect();
    want.push(("sha1".into(), 23));
    assert_eq!(order, want);
    assert!(values
        .iter()
        .all(|(b, _, v)| v.len() == if b == "sha1" { 20 } else { 32 }));
    // PCR 16 starts at zero on a fresh simulator.
    assert_eq!(values[10].2, vec![0u8; 32]);
    for bad in ["sha256:24", "md5:1", "16"] {
        match proxy.read_pcrs(bad).await {
            Err(DaemonError::InvalidArgument(m)) => assert!(!m.is_empty()),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_tpm12_reads_its_sha1_bank_and_refuses_policy_digests() {
    let env = TestEnv::start_family(Family::Tpm12).await;
    let proxy = env.proxy().await;
    let values = proxy.read_pcrs("sha1:0,16").await.unwrap();
    let order: Vec<(&str, u32, usize)> = values
        .iter()
        .map(|(b, i, v)| (b.as_str(), *i, v.len()))
        .collect();
    assert_eq!(order, [("sha1", 0, 20), ("sha1", 16, 20)]);
    match proxy.read_pcrs("sha256:0").await {
        Err(DaemonError::Unsupported(m)) => assert!(m.contains("sha1"), "{m}"),
        other => panic!("{other:?}"),
    }
    let options = GenerateOptions {
        policy_digest: Some(vec![0; 32]),
        ..GenerateOptions::default()
    };
    match proxy.generate("rsa2048", &[], options).await {
        Err(DaemonError::Unsupported(m)) => assert!(m.contains("TPM 2.0"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn policy_digests_of_the_wrong_size_are_refused() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;
    let options = GenerateOptions {
        policy_digest: Some(vec![0; 20]),
        ..GenerateOptions::default()
    };
    match proxy.generate("ecc-p256", &[], options).await {
        Err(DaemonError::InvalidArgument(m)) => assert!(m.contains("32 bytes"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// PCR 16's value after extending `value` with the SHA-256 of `data`.
fn extended(value: &[u8], data: &[u8]) -> Vec<u8> {
    Sha256::new()
        .chain_update(value)
        .chain_update(Sha256::digest(data))
        .finalize()
        .to_vec()
}

#[tokio::test]
async fn policy_or_takes_the_branch_the_file_runs() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;
    let now = pcr16(&proxy).await;
    let next = extended(&now, b"next kernel");
    // One key, two branches: PCR 16 as it is now, or after the next kernel.
    let branch = |value: &[u8]| policy_digest(TPM_ALG_SHA256, &[pcr_policy(value)]).unwrap();
    let or = or_statement(&[branch(&now), branch(&next)]);
    let key = policy_key(&proxy, &[], vec![pcr_policy(&now), or.clone()], None).await;
    sign(&proxy, &key, &[]).await.unwrap();
    extend_pcr(&env, b"next kernel");
    assert_eq!(pcr16(&proxy).await, next);
    let message = policy_failed(sign(&proxy, &key, &[]).await);
    assert!(message.contains("sha256:16"), "{message}");
    // The same key with the other branch written in its file: no new key, no new blob.
    let mut file = TpmKeyFile::parse(&key).unwrap();
    file.policy = vec![pcr_policy(&next), or];
    sign(&proxy, file.to_pem().as_bytes(), &[]).await.unwrap();
}

#[tokio::test]
async fn rsa_policy_keys_decrypt_with_and_without_an_auth_value() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;
    let value = pcr16(&proxy).await;
    for (auth, statements) in [
        (&b""[..], vec![pcr_policy(&value)]),
        (b"pin", vec![pcr_policy(&value), auth_value_statement()]),
    ] {
        let key = policy_key_of_type(
            &proxy,
            "rsa2048",
            auth,
            statements.clone(),
            statements,
            None,
        )
        .await;
        let spki = proxy.public_key(&key).await.unwrap();
        let public = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
        let ciphertext = public
            .encrypt(&mut rand::rngs::OsRng, rsa::Pkcs1v15Encrypt, b"a secret")
            .unwrap();
        let plain =
            tpmd_tests::calls::decrypt(&proxy, &key, auth, "rsa-pkcs1", "sha256", &ciphertext)
                .await
                .unwrap();
        assert_eq!(plain, b"a secret");
    }
}

#[tokio::test]
async fn a_tpm12_key_bound_to_pcr16_fails_with_the_pcrs_named() {
    let env = TestEnv::start_family(Family::Tpm12).await;
    let proxy = env.proxy().await;
    let value: [u8; 20] = proxy.read_pcrs("sha1:16").await.unwrap()[0]
        .2
        .clone()
        .try_into()
        .unwrap();
    let binding = tpmd_api::client::tpm12::pcr_binding(&[16], &[value]).unwrap();
    let srk = TpmPublic::from_tpm2b(&proxy.parent_public(0x8100_0001).await.unwrap()).unwrap();
    let soft = SoftwareKey::Rsa(rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap());
    let key = tpmd_api::client::tpm12::wrap_bound(&soft, b"pw", &srk, binding).unwrap();
    let digest = Sha256::digest(b"on a 1.2");
    let sign = || {
        tpmd_tests::calls::sign(
            &proxy,
            key.as_bytes(),
            b"pw",
            scheme::RSA_PKCS1,
            "sha256",
            &digest,
        )
    };
    sign().await.unwrap();
    let mut tpm = tpmd_tpm12::client::Tpm12::connect(env.sim.transport()).unwrap();
    tpm.extend(16, &[0x16; 20]).unwrap();
    match sign().await {
        Err(DaemonError::PolicyFailed(m)) => assert!(m.contains("sha1:16"), "{m}"),
        other => panic!("{other:?}"),
    }
}
