//! The D-Bus API directly: info, RSA schemes, decryption, key auth and its rate limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::DaemonError;
use tpmd_tests::TestEnv;

#[tokio::test]
async fn info_reports_the_tpm() {
    let env = TestEnv::start().await;
    let info = env.proxy().await.get_info().await.unwrap();
    assert_eq!(info.family.as_deref(), Some("2.0"));
    assert_eq!(info.srk_present, Some(true));
    assert_eq!(info.srk_handle, Some(0x8100_0001));
    assert!(info.key_types.unwrap().contains(&"ecc-p256".to_string()));
    assert!(info.counters.is_some());
    assert_eq!(info.lockout, Some(false));
}

#[tokio::test]
async fn rsa_sign_schemes_and_decrypt() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;
    let key = proxy
        .generate("rsa2048", &[], GenerateOptions::default())
        .await
        .unwrap();
    let public = RsaPublicKey::from_public_key_der(&proxy.public_key(&key).await.unwrap()).unwrap();
    let digest = Sha256::digest(b"hello");

    let sig = tpmd_tests::calls::sign(&proxy, &key, &[], scheme::RSA_PKCS1, "sha256", &digest)
        .await
        .unwrap();
    public
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .unwrap();

    // CKM_RSA_PKCS style: the caller supplies the DigestInfo.
    let mut digest_info = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    digest_info.extend_from_slice(&digest);
    let raw = tpmd_tests::calls::sign(&proxy, &key, &[], scheme::RSA_PKCS1_RAW, "", &digest_info)
        .await
        .unwrap();
    assert_eq!(raw, sig, "raw PKCS#1 and RSASSA must agree");

    let pss = tpmd_tests::calls::sign(&proxy, &key, &[], scheme::RSA_PSS, "sha256", &digest)
        .await
        .unwrap();
    public
        .verify(rsa::Pss::new::<Sha256>(), &digest, &pss)
        .unwrap();

    let mut rng = rand::thread_rng();
    let ct = public
        .encrypt(&mut rng, Oaep::new::<Sha256>(), b"secret")
        .unwrap();
    let pt = tpmd_tests::calls::decrypt(&proxy, &key, &[], scheme::RSA_OAEP, "sha256", &ct)
        .await
        .unwrap();
    assert_eq!(pt, b"secret");
    let ct = public
        .encrypt(&mut rng, Pkcs1v15Encrypt, b"secret2")
        .unwrap();
    let pt = tpmd_tests::calls::decrypt(&proxy, &key, &[], scheme::RSA_PKCS1_DECRYPT, "", &ct)
        .await
        .unwrap();
    assert_eq!(pt, b"secret2");

    // Wrong digest size and wrong scheme are argument errors, not TPM errors.
    let e = tpmd_tests::calls::sign(&proxy, &key, &[], scheme::RSA_PKCS1, "sha256", &[0; 5])
        .await
        .unwrap_err();
    assert!(matches!(e, DaemonError::InvalidArgument(_)), "{e:?}");
    let e = tpmd_tests::calls::sign(&proxy, &key, &[], scheme::ECDSA, "sha256", &digest)
        .await
        .unwrap_err();
    assert!(matches!(e, DaemonError::InvalidArgument(_)), "{e:?}");
    let e = tpmd_tests::calls::sign(
        &proxy,
        b"not a key",
        &[],
        scheme::RSA_PKCS1,
        "sha256",
        &digest,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, DaemonError::BadKeyFile(_)), "{e:?}");
}

#[tokio::test]
async fn key_auth_is_checked_and_failures_are_rate_limited() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;
    let key = proxy
        .generate("ecc-p256", b"correct horse", GenerateOptions::default())
        .await
        .unwrap();
    let digest = Sha256::digest(b"m");
    let sign = |auth: &'static [u8]| {
        tpmd_tests::calls::sign(&proxy, &key, auth, scheme::ECDSA, "sha256", &digest)
    };
    sign(b"correct horse").await.unwrap();

    let mut saw_rate_limit = false;
    for _ in 0..5 {
        match sign(b"wrong").await {
            Err(DaemonError::AuthFailed(m)) => assert!(m.contains("wrong auth"), "{m}"),
            Err(DaemonError::RateLimited(m)) => {
                assert!(m.contains("try again"), "{m}");
                saw_rate_limit = true;
                break;
            }
            other => panic!("expected an auth failure, got {other:?}"),
        }
    }
    assert!(saw_rate_limit, "failures were not rate limited");
    // While limited, even the right auth waits: the limit is on the caller.
    let e = sign(b"correct horse").await.unwrap_err();
    assert!(matches!(e, DaemonError::RateLimited(_)), "{e:?}");
}
