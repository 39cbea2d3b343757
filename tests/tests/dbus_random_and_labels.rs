//! tpmd's GetRandom and its decryption with OAEP labels and raw RSA, through the D-Bus
//! API on both TPM families: what each TPM can do works, what it cannot is refused with
//! the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, RsaPublicKey};
use sha2::Sha256;
use tpmd_api::dbus::{scheme, DecryptOptions, GenerateOptions};
use tpmd_api::DaemonError;
use tpmd_tests::{Family, TestEnv};

fn label(l: &[u8]) -> DecryptOptions {
    DecryptOptions {
        label: Some(l.to_vec()),
    }
}

#[tokio::test]
async fn random_bytes_labels_and_raw_decryption_on_a_tpm2() {
    let env = TestEnv::start().await;
    let proxy = env.proxy().await;

    for n in [0u32, 1, 65, 4096] {
        assert_eq!(proxy.get_random(n).await.unwrap().len(), n as usize);
    }
    let err = proxy.get_random(4097).await.unwrap_err();
    assert!(
        matches!(&err, DaemonError::InvalidArgument(m) if m.contains("4096")),
        "{err:?}"
    );

    let key = proxy
        .generate("rsa2048", &[], GenerateOptions::default())
        .await
        .unwrap();
    let public = RsaPublicKey::from_public_key_der(&proxy.public_key(&key).await.unwrap()).unwrap();
    let mut rng = rand::thread_rng();
    // A label that ends in a zero byte goes to the TPM as it is.
    let ct = public
        .encrypt(
            &mut rng,
            Oaep::new_with_label::<Sha256, _>("tls\0"),
            b"secret",
        )
        .unwrap();
    let plain = tpmd_tests::calls::decrypt_with_options(
        &proxy,
        &key,
        &[],
        (scheme::RSA_OAEP, "sha256"),
        &ct,
        label(b"tls\0"),
    )
    .await
    .unwrap();
    assert_eq!(plain, b"secret");
    // Other labels are refused with the way out: raw decryption.
    let ct = public
        .encrypt(
            &mut rng,
            Oaep::new_with_label::<Sha256, _>("tls"),
            b"secret",
        )
        .unwrap();
    let err = tpmd_tests::calls::decrypt_with_options(
        &proxy,
        &key,
        &[],
        (scheme::RSA_OAEP, "sha256"),
        &ct,
        label(b"tls"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaemonError::InvalidArgument(m) if m.contains("zero byte") && m.contains("rsa-raw")),
        "{err:?}"
    );
    // Raw: the whole block, which the public key turns back into the ciphertext.
    let block = tpmd_tests::calls::decrypt(&proxy, &key, &[], scheme::RSA_RAW, "", &ct)
        .await
        .unwrap();
    assert_eq!(block.len(), 256);
    assert_eq!(block[0], 0, "an OAEP block starts with a zero byte");
    let again = BigUint::from_bytes_be(&block)
        .modpow(public.e(), public.n())
        .to_bytes_be();
    assert_eq!(again, ct);
    // A label belongs to OAEP only.
    let ct = public.encrypt(&mut rng, Pkcs1v15Encrypt, b"x").unwrap();
    let err = tpmd_tests::calls::decrypt_with_options(
        &proxy,
        &key,
        &[],
        (scheme::RSA_PKCS1_DECRYPT, ""),
        &ct,
        label(b"l\0"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DaemonError::InvalidArgument(_)), "{err:?}");
    let counters = proxy.get_counters().await.unwrap().tpm_commands.unwrap();
    assert!(counters.get("GetRandom").copied().unwrap_or(0) >= 4096 / 64);
}

#[tokio::test]
async fn a_tpm12_draws_random_bytes_and_refuses_labels_and_raw_decryption() {
    let env = TestEnv::start_family(Family::Tpm12).await;
    let proxy = env.proxy().await;
    assert_eq!(proxy.get_random(300).await.unwrap().len(), 300);
    let key = proxy
        .generate("rsa2048", &[], GenerateOptions::default())
        .await
        .unwrap();
    let public = RsaPublicKey::from_public_key_der(&proxy.public_key(&key).await.unwrap()).unwrap();
    let ct = public
        .encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, b"pre-master")
        .unwrap();
    assert_eq!(
        tpmd_tests::calls::decrypt(&proxy, &key, &[], scheme::RSA_PKCS1_DECRYPT, "", &ct)
            .await
            .unwrap(),
        b"pre-master"
    );
    let err = tpmd_tests::calls::decrypt(&proxy, &key, &[], scheme::RSA_RAW, "", &ct)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaemonError::Unsupported(m) if m.contains("TPM 1.2")),
        "{err:?}"
    );
    let err = tpmd_tests::calls::decrypt_with_options(
        &proxy,
        &key,
        &[],
        (scheme::RSA_OAEP, "sha1"),
        &ct,
        label(b"l\0"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaemonError::Unsupported(m) if m.contains("label")),
        "{err:?}"
    );
}
