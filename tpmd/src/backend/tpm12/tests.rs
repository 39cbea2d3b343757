//! The TPM 1.2 backend against swtpm in TPM 1.2 mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tpmd_api::public::KeyParams;
use tpmd_api::TpmPublic;
use tpmd_simulator::{Family as SimFamily, Simulator};
use tpmd_tpm12::codec::consts::{alg, auth_usage};
use tpmd_tpm12::codec::{KeyParms, PubKey};
use tpmd_tpm12::keys::wrap::{wrap_rsa_key, Usage};
use tpmd_tpm12::keys::{bind, file, public};
use tpmd_tpm12::rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use tpmd_tpm2::transport::Transport;

use super::Tpm12Backend;
use crate::backend::{Backend, DecryptRequest, KeyBinding, SignRequest, TpmError};

fn start(provision: bool, budget: usize) -> (Simulator, Tpm12Backend) {
    let sim = Simulator::start_in_tempdir(SimFamily::Tpm12, None, provision).unwrap();
    let backend = Tpm12Backend::open(Transport::swtpm_tcp(sim.port()), budget).unwrap();
    (sim, backend)
}

/// What a client does: take the SRK from ParentPublic and wrap in software.
fn wrap_for(backend: &mut Tpm12Backend, soft: &RsaPrivateKey, password: &[u8]) -> String {
    let public = TpmPublic::from_tpm2b(&backend.parent_public(0x8100_0001).unwrap()).unwrap();
    let KeyParams::Rsa { modulus, .. } = public.key else {
        panic!("the SRK is RSA");
    };
    let srk = PubKey {
        parms: KeyParms::rsa(2048, alg::ES_RSAESOAEP_SHA1_MGF1, alg::SS_NONE),
        modulus,
    };
    let auth =
        (!password.is_empty()).then(|| tpmd_tpm12::codec::AuthSecret::from_password(password));
    let key = wrap_rsa_key(&mut OsRng, soft, &srk, auth.as_ref(), Usage::Legacy).unwrap();
    file::write_pem(&key.to_bytes()).unwrap()
}

fn sign_sha256(
    backend: &mut Tpm12Backend,
    pem: &str,
    password: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, TpmError> {
    let digest = Sha256::digest(msg);
    backend.sign(
        pem.as_bytes(),
        password,
        &SignRequest {
            scheme: "rsa-pkcs1",
            hash: "sha256",
            data: &digest,
        },
    )
}

fn public_of(pem: &str) -> RsaPublicKey {
    public::to_rsa(&file::read(pem.as_bytes()).unwrap().key.pubkey()).unwrap()
}

fn verify(pem: &str, msg: &[u8], sig: &[u8]) {
    public_of(pem)
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig)
        .unwrap();
}

#[test]
fn info_wrap_import_sign_decrypt() {
    let (_sim, mut backend) = start(true, 4);
    let info = backend.info().unwrap();
    assert_eq!(info.family.as_deref(), Some("1.2"));
    assert_eq!(info.owned, Some(true));
    assert_eq!(info.srk_present, Some(true));
    assert_eq!(info.lockout, Some(false));
    assert!(info.nv_locked.is_some());

    let soft = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let pem = wrap_for(&mut backend, &soft, b"secret");
    let imported = backend.import(pem.as_bytes()).unwrap();
    assert!(imported.starts_with("-----BEGIN TSS KEY BLOB-----"));
    let sig = sign_sha256(&mut backend, &imported, b"secret", b"hello").unwrap();
    verify(&imported, b"hello", &sig);

    // Wrong password: a clear auth error, and the next request still works.
    let err = sign_sha256(&mut backend, &imported, b"wrong", b"hello").unwrap_err();
    assert!(matches!(err, TpmError::AuthFailed { .. }), "{err}");
    assert!(
        err.to_string().contains("dictionary-attack counter"),
        "{err}"
    );
    sign_sha256(&mut backend, &imported, b"secret", b"again").unwrap();

    // Decrypt: data bound in the TSS format (OAEP SHA-1, TCPA label) unbinds.
    let ciphertext = bind::bind(&mut OsRng, &soft.to_public_key(), b"session key").unwrap();
    let plain = backend
        .decrypt(
            imported.as_bytes(),
            b"secret",
            &DecryptRequest {
                scheme: "rsa-oaep",
                hash: "sha1",
                ciphertext: &ciphertext,
                label: &[],
            },
        )
        .unwrap();
    assert_eq!(plain, b"session key");

    // What a TPM 1.2 cannot do is refused clearly.
    let err = backend
        .sign(
            imported.as_bytes(),
            b"secret",
            &SignRequest {
                scheme: "ecdsa",
                hash: "sha256",
                data: &[0; 32],
            },
        )
        .unwrap_err();
    assert!(matches!(err, TpmError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("TPM 1.2"), "{err}");
    let err = backend
        .generate("ecc-p256", b"", 0x8100_0001, &KeyBinding::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("not supported by a TPM 1.2"),
        "{err}"
    );
    let err = backend
        .sign(
            b"-----BEGIN TSS2 PRIVATE KEY-----\nAA==\n-----END TSS2 PRIVATE KEY-----\n",
            b"",
            &SignRequest {
                scheme: "rsa-pkcs1",
                hash: "sha256",
                data: &[0; 32],
            },
        )
        .unwrap_err();
    assert!(matches!(err, TpmError::BadKeyFile(_)), "{err}");

    // A key wrapped for another SRK: the load fails as "wrapped for another TPM".
    let other = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let other_srk = PubKey {
        parms: KeyParms::rsa(2048, alg::ES_RSAESOAEP_SHA1_MGF1, alg::SS_NONE),
        modulus: public::rsa_fields(&other.to_public_key()).0,
    };
    let foreign = wrap_rsa_key(&mut OsRng, &soft, &other_srk, None, Usage::Legacy).unwrap();
    let foreign = file::write_pem(&foreign.to_bytes()).unwrap();
    let err = backend.import(foreign.as_bytes()).unwrap_err();
    assert!(matches!(err, TpmError::WrongTpm { .. }), "{err}");
    let err = sign_sha256(&mut backend, &foreign, b"", b"x").unwrap_err();
    assert!(matches!(err, TpmError::WrongTpm { .. }), "{err}");
}

#[test]
fn generated_keys_share_few_slots_and_survive_a_reset() {
    let (sim, mut backend) = start(true, 2);
    let pems: Vec<String> = (0..3)
        .map(|_| {
            backend
                .generate("rsa1024", b"", 0x4000_0000, &KeyBinding::default())
                .unwrap()
        })
        .collect();
    for pem in &pems {
        let key = file::read(pem.as_bytes()).unwrap().key;
        assert_eq!(key.auth_data_usage, auth_usage::NEVER);
    }
    // Three keys, two slots: round robin forces evictions and reloads.
    for round in 0..2 {
        for pem in &pems {
            let msg = format!("round {round}");
            let sig = sign_sha256(&mut backend, pem, b"", msg.as_bytes()).unwrap();
            verify(pem, msg.as_bytes(), &sig);
        }
    }
    let c = backend.counters();
    assert!(c.evictions.unwrap() >= 4, "{c:?}");
    // Each key is loaded from its blob once; afterwards from its saved context.
    assert_eq!(c.loads.unwrap(), 3, "{c:?}");
    assert!(c.context_loads.unwrap() >= 3, "{c:?}");
    assert!(c.loaded_keys.unwrap() <= 2, "{c:?}");
    // The same key twice in a row is a cache hit.
    sign_sha256(&mut backend, &pems[2], b"", b"x").unwrap();
    let hits = backend.counters().hits.unwrap();
    sign_sha256(&mut backend, &pems[2], b"", b"y").unwrap();
    assert_eq!(backend.counters().hits.unwrap(), hits + 1);

    // TPM_Init under our feet: the loaded keys are gone; the next request reloads.
    sim.init_only().unwrap();
    let sig = sign_sha256(&mut backend, &pems[0], b"", b"after reset").unwrap();
    verify(&pems[0], b"after reset", &sig);
    assert!(backend.counters().resets_recovered.unwrap() >= 1);
    let sig = sign_sha256(&mut backend, &pems[1], b"", b"after reset").unwrap();
    verify(&pems[1], b"after reset", &sig);
}

#[test]
fn create_srk_takes_ownership_once() {
    let (_sim, mut backend) = start(false, 2);
    assert_eq!(backend.info().unwrap().owned, Some(false));
    assert!(backend.create_srk().unwrap());
    assert!(!backend.create_srk().unwrap());
    assert_eq!(backend.info().unwrap().owned, Some(true));
    let pem = backend
        .generate("rsa1024", b"pw", 0x8100_0001, &KeyBinding::default())
        .unwrap();
    let sig = sign_sha256(&mut backend, &pem, b"pw", b"owned").unwrap();
    verify(&pem, b"owned", &sig);
    // Signing with a password reuses the one OIAP session.
    let opened = backend.resource_manager().tpm().stats().oiap_opened;
    for i in 0..5u8 {
        sign_sha256(&mut backend, &pem, b"pw", &[i]).unwrap();
    }
    assert_eq!(backend.resource_manager().tpm().stats().oiap_opened, opened);
}

#[test]
fn an_srk_with_a_password_is_named_in_the_error() {
    let sim = Simulator::start_in_tempdir(SimFamily::Tpm12, None, false).unwrap();
    let mut tpm =
        tpmd_tpm12::client::Tpm12::connect(tpmd_tpm12::client::Transport::swtpm_tcp(sim.port()))
            .unwrap();
    let secret = tpmd_tpm12::codec::AuthSecret::from_password(b"srk password");
    tpm.take_ownership(&secret, &secret).unwrap();
    drop(tpm);
    let mut backend = Tpm12Backend::open(Transport::swtpm_tcp(sim.port()), 2).unwrap();
    let err = backend
        .generate("rsa1024", b"", 0x4000_0000, &KeyBinding::default())
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("SRK"), "{text}");
    assert!(text.contains("well-known"), "{text}");
}

#[test]
fn decrypt_follows_the_key_scheme() {
    let (_sim, mut backend) = start(true, 2);
    let public = TpmPublic::from_tpm2b(&backend.parent_public(0x4000_0000).unwrap()).unwrap();
    let KeyParams::Rsa { modulus, .. } = public.key else {
        panic!("the SRK is RSA");
    };
    let srk = PubKey {
        parms: KeyParms::rsa(2048, alg::ES_RSAESOAEP_SHA1_MGF1, alg::SS_NONE),
        modulus,
    };
    let soft = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let key = wrap_rsa_key(&mut OsRng, &soft, &srk, None, Usage::LegacyPkcs1).unwrap();
    let pem = file::write_pem(&key.to_bytes()).unwrap();
    // A standard RSAES-PKCS1-v1_5 ciphertext, as PKCS#11 CKM_RSA_PKCS or TLS make it.
    let ciphertext = soft
        .to_public_key()
        .encrypt(&mut OsRng, tpmd_tpm12::rsa::Pkcs1v15Encrypt, b"premaster")
        .unwrap();
    let request = |scheme| DecryptRequest {
        scheme,
        hash: "sha1",
        ciphertext: &ciphertext,
        label: &[],
    };
    let plain = backend
        .decrypt(pem.as_bytes(), b"", &request("rsa-pkcs1"))
        .unwrap();
    assert_eq!(plain, b"premaster");
    let err = backend
        .decrypt(pem.as_bytes(), b"", &request("rsa-oaep"))
        .unwrap_err();
    assert!(matches!(err, TpmError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("rsa-pkcs1"), "{err}");
}

#[test]
fn generated_keys_decrypt_standard_pkcs1_ciphertexts() {
    let (_sim, mut backend) = start(true, 2);
    let pem = backend
        .generate("rsa2048", b"pin", 0x8100_0001, &KeyBinding::default())
        .unwrap();
    let key = file::read(pem.as_bytes()).unwrap().key;
    assert_eq!(key.parms.enc_scheme, alg::ES_RSAESPKCSV15);
    let ciphertext = public_of(&pem)
        .encrypt(
            &mut OsRng,
            tpmd_tpm12::rsa::Pkcs1v15Encrypt,
            b"pre-master secret",
        )
        .unwrap();
    let request = |scheme, label: &'static [u8]| DecryptRequest {
        scheme,
        hash: "sha1",
        ciphertext: &ciphertext,
        label,
    };
    let plain = backend
        .decrypt(pem.as_bytes(), b"pin", &request("rsa-pkcs1", b""))
        .unwrap();
    assert_eq!(plain, b"pre-master secret");
    // Raw RSA and OAEP labels are beyond a TPM 1.2, and it says so.
    for (scheme, label) in [("rsa-raw", &b""[..]), ("rsa-oaep", &b"label"[..])] {
        let err = backend
            .decrypt(pem.as_bytes(), b"pin", &request(scheme, label))
            .unwrap_err();
        assert!(matches!(err, TpmError::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("TPM 1.2"), "{err}");
    }
}

#[test]
fn random_bytes_come_from_the_tpm_in_any_amount() {
    let (_sim, mut backend) = start(true, 2);
    for count in [0, 1, 20, 1000] {
        assert_eq!(backend.random(count).unwrap().len(), count);
    }
    let a = backend.random(32).unwrap();
    let b = backend.random(32).unwrap();
    assert_ne!(a, b, "two draws of 32 bytes are equal");
    let err = backend
        .random(crate::backend::MAX_RANDOM_BYTES + 1)
        .unwrap_err();
    assert!(matches!(err, TpmError::InvalidArgument(_)), "{err}");
}

#[test]
fn a_vanished_tpm_is_reported_as_unavailable() {
    let (sim, mut backend) = start(true, 2);
    let pem = backend
        .generate("rsa1024", b"", 0x4000_0000, &KeyBinding::default())
        .unwrap();
    sign_sha256(&mut backend, &pem, b"", b"before").unwrap();
    sim.stop().unwrap();
    let started = std::time::Instant::now();
    let err = sign_sha256(&mut backend, &pem, b"", b"after").unwrap_err();
    assert!(matches!(err, TpmError::Unavailable(_)), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
