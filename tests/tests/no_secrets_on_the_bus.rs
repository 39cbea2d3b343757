//! What an eavesdropper on the TPM bus sees while keys with an auth value are wrapped,
//! made, and used to sign and decrypt: a capture of every byte between tpmd and the TPM
//! holds neither the auth value, nor the private key, nor a decrypted plaintext. (The
//! session is salted to the SRK, so the capture does not let anyone test PIN guesses
//! offline either: the session key never crosses the bus.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PrivateKeyParts;
use sha2::{Digest, Sha256};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::privkey::{read_private_key, SoftwareKey};
use tpmd_simulator::proxy::ProxyOptions;
use tpmd_simulator::Simulator;
use tpmd_tests::tools::ok;
use tpmd_tests::TestEnv;

const PIN: &[u8] = b"PIN-9f3a7c-secret";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() >= 8 && haystack.windows(needle.len()).any(|w| w == needle)
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tpmd/api/tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The private key's secret numbers, as big-endian bytes.
fn secrets_of(pem: &[u8]) -> Vec<Vec<u8>> {
    match read_private_key(pem, None).unwrap().key {
        SoftwareKey::Rsa(key) => {
            let mut parts: Vec<Vec<u8>> = key.primes().iter().map(|p| p.to_bytes_be()).collect();
            parts.push(key.d().to_bytes_be());
            parts
        }
        SoftwareKey::EcP256(key) => vec![key.to_bytes().to_vec()],
        SoftwareKey::EcP384(key) => vec![key.to_bytes().to_vec()],
    }
}

#[tokio::test]
async fn a_capture_of_the_tpm_channel_holds_no_auth_value_key_or_plaintext() {
    let sim = Simulator::start_temporary_with(ProxyOptions::raw_device().with_capture()).unwrap();
    let env = TestEnv::start_on(sim, &[]).await;
    std::fs::write(env.path("pin"), PIN).unwrap();
    let mut secrets: Vec<Vec<u8>> = vec![PIN.to_vec()];
    let mut keys = Vec::new();
    for name in ["rsa2048-pkcs1.pem", "p256-sec1.pem"] {
        std::fs::write(env.path(name), data(name)).unwrap();
        ok(&env.keyctl(&["wrap", "--auth-file", "pin", name]));
        secrets.extend(secrets_of(&data(name)));
        keys.push(std::fs::read(env.path(&format!("{name}.tpm"))).unwrap());
    }
    let proxy = env.proxy().await;
    let generated = proxy
        .generate("ecc-p256", PIN, GenerateOptions::default())
        .await
        .unwrap();

    let digest = Sha256::digest(b"signed with a PIN");
    let rsa_sig =
        tpmd_tests::calls::sign(&proxy, &keys[0], PIN, scheme::RSA_PKCS1, "sha256", &digest)
            .await
            .unwrap();
    assert_eq!(rsa_sig.len(), 256);
    for key in [&keys[1], &generated] {
        tpmd_tests::calls::sign(&proxy, key, PIN, scheme::ECDSA, "sha256", &digest)
            .await
            .unwrap();
    }
    let plaintext = b"a session key the TPM decrypts for us".to_vec();
    let spki = proxy.public_key(&keys[0]).await.unwrap();
    let public = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
    let ciphertext = public
        .encrypt(
            &mut rand::thread_rng(),
            rsa::Oaep::new::<Sha256>(),
            &plaintext,
        )
        .unwrap();
    let decrypted = tpmd_tests::calls::decrypt(
        &proxy,
        &keys[0],
        PIN,
        scheme::RSA_OAEP,
        "sha256",
        &ciphertext,
    )
    .await
    .unwrap();
    assert_eq!(decrypted, plaintext);
    secrets.push(plaintext);

    let capture = env.sim.proxy().unwrap().capture();
    // The capture is real: it holds what is public (the key's modulus, the signature).
    use rsa::traits::PublicKeyParts;
    assert!(
        contains(&capture, &public.n().to_bytes_be()),
        "the capture missed the public key"
    );
    assert!(
        contains(&capture, &rsa_sig),
        "the capture missed the signature"
    );
    for (i, secret) in secrets.iter().enumerate() {
        assert!(
            !contains(&capture, secret),
            "secret #{i} ({} bytes) crossed the TPM bus in clear",
            secret.len()
        );
    }
}
