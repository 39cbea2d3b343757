//! libtpmd_pkcs11.so loaded through the cryptoki crate, against tpmd on a fresh
//! simulator: objects from key files, every mechanism (signatures checked with
//! RustCrypto against the public key openssl wrote), decryption, login, key management,
//! threads and a tpmd restart in the middle of a signing loop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::pkcs8::DecodePublicKey;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tpmd_tests::pkcs11::{TestKey, Token};

const MESSAGE: &[u8] = b"the quick brown fox jumps over the lazy dog";

fn slot(p: &Pkcs11) -> Slot {
    let slots = p.get_slots_with_token().unwrap();
    assert_eq!(slots.len(), 1, "one slot per tpmd");
    slots[0]
}

fn find(s: &Session, template: &[Attribute]) -> Vec<ObjectHandle> {
    s.find_objects(template).unwrap()
}

fn private_key_with_spki(s: &Session, spki: &[u8]) -> ObjectHandle {
    let keys = find(s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
    *keys
        .iter()
        .find(|k| {
            s.get_attributes(**k, &[AttributeType::PublicKeyInfo])
                .unwrap()
                .contains(&Attribute::PublicKeyInfo(spki.to_vec()))
        })
        .expect("no private key object with this public key")
}

fn digest_of(hash: &str, data: &[u8]) -> Vec<u8> {
    match hash {
        "sha1" => Sha1::digest(data).to_vec(),
        "sha256" => Sha256::digest(data).to_vec(),
        "sha384" => Sha384::digest(data).to_vec(),
        _ => Sha512::digest(data).to_vec(),
    }
}

fn digest_info(hash: &str, data: &[u8]) -> Vec<u8> {
    // DER DigestInfo prefixes from RFC 8017 section 9.2.
    let prefix: &[u8] = match hash {
        "sha1" => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        "sha256" => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        "sha384" => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        _ => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    };
    let mut out = prefix.to_vec();
    out.extend(digest_of(hash, data));
    out
}

fn verify_pkcs1(spki: &[u8], hash: &str, sig: &[u8]) {
    let pk = rsa::RsaPublicKey::from_public_key_der(spki).unwrap();
    pk.verify(
        rsa::Pkcs1v15Sign::new_unprefixed(),
        &digest_info(hash, MESSAGE),
        sig,
    )
    .unwrap_or_else(|e| panic!("PKCS#1 {hash} signature does not verify: {e}"));
}

fn verify_pss(spki: &[u8], hash: &str, sig: &[u8]) {
    let pk = rsa::RsaPublicKey::from_public_key_der(spki).unwrap();
    let digest = digest_of(hash, MESSAGE);
    let r = match hash {
        "sha256" => pk.verify(rsa::Pss::new::<Sha256>(), &digest, sig),
        "sha384" => pk.verify(rsa::Pss::new::<Sha384>(), &digest, sig),
        _ => pk.verify(rsa::Pss::new::<Sha512>(), &digest, sig),
    };
    r.unwrap_or_else(|e| panic!("PSS {hash} signature does not verify: {e}"));
}

fn verify_ecdsa(spki: &[u8], hash: &str, sig: &[u8]) {
    let digest = digest_of(hash, MESSAGE);
    if let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_der(spki) {
        let s = p256::ecdsa::Signature::from_slice(sig).unwrap();
        vk.verify_prehash(&digest, &s)
            .unwrap_or_else(|e| panic!("P-256 ECDSA {hash} does not verify: {e}"));
    } else {
        // RustCrypto refuses digests shorter than half the field; zeros on the left keep
        // the number ECDSA signs the same.
        let mut digest = digest;
        if digest.len() < 24 {
            digest.splice(0..0, vec![0u8; 48 - digest.len()]);
        }
        let vk = p384::ecdsa::VerifyingKey::from_public_key_der(spki).unwrap();
        let s = p384::ecdsa::Signature::from_slice(sig).unwrap();
        vk.verify_prehash(&digest, &s)
            .unwrap_or_else(|e| panic!("P-384 ECDSA {hash} does not verify: {e}"));
    }
}

fn pss(hash: &str) -> PkcsPssParams {
    let (hash_alg, mgf, len) = match hash {
        "sha256" => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32),
        "sha384" => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48),
        _ => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64),
    };
    PkcsPssParams {
        hash_alg,
        mgf,
        s_len: len.into(),
    }
}

fn sign_rsa_everything(s: &Session, key: ObjectHandle, k: &TestKey) {
    for hash in ["sha1", "sha256", "sha384", "sha512"] {
        let sig = s
            .sign(&Mechanism::RsaPkcs, key, &digest_info(hash, MESSAGE))
            .unwrap();
        verify_pkcs1(&k.spki, hash, &sig);
    }
    let hashed = [
        (Mechanism::Sha1RsaPkcs, "sha1"),
        (Mechanism::Sha256RsaPkcs, "sha256"),
        (Mechanism::Sha384RsaPkcs, "sha384"),
        (Mechanism::Sha512RsaPkcs, "sha512"),
    ];
    for (mech, hash) in hashed {
        let sig = s.sign(&mech, key, MESSAGE).unwrap();
        verify_pkcs1(&k.spki, hash, &sig);
        // Multi-part gives a valid signature too.
        s.sign_init(&mech, key).unwrap();
        s.sign_update(&MESSAGE[..10]).unwrap();
        s.sign_update(&MESSAGE[10..]).unwrap();
        verify_pkcs1(&k.spki, hash, &s.sign_final().unwrap());
    }
    for hash in ["sha256", "sha384", "sha512"] {
        let sig = s
            .sign(
                &Mechanism::RsaPkcsPss(pss(hash)),
                key,
                &digest_of(hash, MESSAGE),
            )
            .unwrap();
        verify_pss(&k.spki, hash, &sig);
        let mech = match hash {
            "sha256" => Mechanism::Sha256RsaPkcsPss(pss(hash)),
            "sha384" => Mechanism::Sha384RsaPkcsPss(pss(hash)),
            _ => Mechanism::Sha512RsaPkcsPss(pss(hash)),
        };
        verify_pss(&k.spki, hash, &s.sign(&mech, key, MESSAGE).unwrap());
    }
}

fn sign_ec_everything(s: &Session, key: ObjectHandle, k: &TestKey) {
    for hash in ["sha1", "sha256", "sha384", "sha512"] {
        let sig = s
            .sign(&Mechanism::Ecdsa, key, &digest_of(hash, MESSAGE))
            .unwrap();
        verify_ecdsa(&k.spki, hash, &sig);
    }
    for (mech, hash) in [
        (Mechanism::EcdsaSha1, "sha1"),
        (Mechanism::EcdsaSha256, "sha256"),
        (Mechanism::EcdsaSha384, "sha384"),
        (Mechanism::EcdsaSha512, "sha512"),
    ] {
        verify_ecdsa(&k.spki, hash, &s.sign(&mech, key, MESSAGE).unwrap());
    }
}

#[test]
fn objects_come_from_every_key_directory() {
    let token = Token::start();
    let store_key = token.wrap_key(&token.store(), "work", "rsa", None);
    let ssh_dir = token.home().join(".ssh");
    let ssh_key = token.wrap_key(&ssh_dir, "id_ecdsa", "p256", None);
    std::fs::write(
        ssh_dir.join("id_ecdsa.pub"),
        "ecdsa-sha2-nistp256 AAAA me@laptop\n",
    )
    .unwrap();
    let extra = token.env.path("extra");
    std::fs::create_dir_all(&extra).unwrap();
    let extra_key = token.wrap_key(&extra, "vpn", "p384", None);
    std::env::set_var("TPMD_PKCS11_KEYS", &extra);

    let p = token.load();
    let info = p.get_token_info(slot(&p)).unwrap();
    assert!(info.label().starts_with("tpmd"), "{}", info.label());
    assert_eq!(info.serial_number().len(), 16, "serial from the SRK");
    assert!(info.token_initialized() && !info.login_required());
    let mechs = p.get_mechanism_list(slot(&p)).unwrap();
    for m in [
        MechanismType::RSA_PKCS,
        MechanismType::SHA256_RSA_PKCS,
        MechanismType::RSA_PKCS_PSS,
        MechanismType::SHA384_RSA_PKCS_PSS,
        MechanismType::RSA_PKCS_OAEP,
        MechanismType::ECDSA,
        MechanismType::ECDSA_SHA384,
        MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        MechanismType::ECC_KEY_PAIR_GEN,
    ] {
        assert!(mechs.contains(&m), "{m} missing");
    }
    let rsa_info = p
        .get_mechanism_info(slot(&p), MechanismType::RSA_PKCS)
        .unwrap();
    assert!(rsa_info.sign() && rsa_info.decrypt() && rsa_info.hardware());
    // Verification and encryption run in the module, with the public key.
    assert!(rsa_info.verify() && rsa_info.encrypt());
    assert_eq!(rsa_info.min_key_size(), 2048);
    let ec_info = p
        .get_mechanism_info(slot(&p), MechanismType::ECDSA)
        .unwrap();
    assert!(ec_info.sign() && !ec_info.decrypt());
    assert_eq!((ec_info.min_key_size(), ec_info.max_key_size()), (256, 384));
    let s = p.open_ro_session(slot(&p)).unwrap();

    let privates = find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]);
    let publics = find(&s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)]);
    assert_eq!((privates.len(), publics.len()), (3, 3));

    for (k, label, key_type) in [
        (&store_key, "work", KeyType::RSA),
        (&ssh_key, "me@laptop", KeyType::EC),
        (&extra_key, "vpn", KeyType::EC),
    ] {
        let private = private_key_with_spki(&s, &k.spki);
        let attrs = s
            .get_attributes(
                private,
                &[
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::KeyType,
                ],
            )
            .unwrap();
        assert!(
            attrs.contains(&Attribute::Label(label.as_bytes().to_vec())),
            "{attrs:?}"
        );
        assert!(attrs.contains(&Attribute::KeyType(key_type)));
        let Some(Attribute::Id(id)) = attrs.iter().find(|a| matches!(a, Attribute::Id(_))) else {
            panic!("no CKA_ID")
        };
        // The public key object has the same CKA_ID and the same public key.
        let public = find(
            &s,
            &[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Id(id.clone()),
            ],
        );
        assert_eq!(public.len(), 1, "{label}");
        let pub_attrs = s
            .get_attributes(public[0], &[AttributeType::PublicKeyInfo])
            .unwrap();
        assert_eq!(pub_attrs, vec![Attribute::PublicKeyInfo(k.spki.clone())]);
        // Private values never come out.
        let sensitive = match key_type {
            KeyType::RSA => AttributeType::PrivateExponent,
            _ => AttributeType::Value,
        };
        let info = s
            .get_attribute_info(private, &[sensitive, AttributeType::Sensitive])
            .unwrap();
        assert!(
            matches!(info[0], AttributeInfo::Sensitive),
            "{label}: {:?}",
            info[0]
        );
        let flags = s
            .get_attributes(
                private,
                &[AttributeType::Sensitive, AttributeType::Extractable],
            )
            .unwrap();
        assert_eq!(
            flags,
            vec![Attribute::Sensitive(true), Attribute::Extractable(false)]
        );
        if label == "me@laptop" {
            // gnome-keyring's convention: CKA_ID of an ~/.ssh key is its SHA-256 fingerprint.
            assert_eq!(id.len(), 32);
        }
    }
    // RSA attributes libp11 and openvpn search by.
    let private = private_key_with_spki(&s, &store_key.spki);
    let rsa_pk = rsa::RsaPublicKey::from_public_key_der(&store_key.spki).unwrap();
    use rsa::traits::PublicKeyParts;
    let attrs = s
        .get_attributes(
            private,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .unwrap();
    assert_eq!(
        attrs,
        vec![
            Attribute::Modulus(rsa_pk.n().to_bytes_be()),
            Attribute::PublicExponent(rsa_pk.e().to_bytes_be()),
        ]
    );

    // Keys outside the module's store are never changed or deleted by it.
    let rw = p.open_rw_session(slot(&p)).unwrap();
    let ssh_private = private_key_with_spki(&rw, &ssh_key.spki);
    assert!(matches!(
        rw.update_attributes(ssh_private, &[Attribute::Label(b"other".to_vec())]),
        Err(Error::Pkcs11(RvError::AttributeReadOnly, _))
    ));
    assert!(matches!(
        rw.destroy_object(ssh_private),
        Err(Error::Pkcs11(RvError::ActionProhibited, _))
    ));
    assert!(ssh_key.tpm.exists());
    drop(rw);

    // A key wrapped while the module is loaded appears without further steps.
    let late = token.wrap_key(&token.store(), "late", "p256", None);
    let key = private_key_with_spki(&s, &late.spki);
    verify_ecdsa(
        &late.spki,
        "sha256",
        &s.sign(&Mechanism::EcdsaSha256, key, MESSAGE).unwrap(),
    );
}

#[test]
fn signs_and_decrypts_with_every_mechanism() {
    let token = Token::start();
    let rsa_key = token.wrap_key(&token.store(), "rsa", "rsa", None);
    let p256_key = token.wrap_key(&token.store(), "p256", "p256", None);
    let p384_key = token.wrap_key(&token.store(), "p384", "p384", None);
    let p = token.load();
    let s = p.open_ro_session(slot(&p)).unwrap();

    let key = private_key_with_spki(&s, &rsa_key.spki);
    sign_rsa_everything(&s, key, &rsa_key);
    for k in [&p256_key, &p384_key] {
        sign_ec_everything(&s, private_key_with_spki(&s, &k.spki), k);
    }

    // Digests (software, no key), single- and multi-part.
    for (mech, hash) in [
        (Mechanism::Sha1, "sha1"),
        (Mechanism::Sha256, "sha256"),
        (Mechanism::Sha384, "sha384"),
        (Mechanism::Sha512, "sha512"),
    ] {
        assert_eq!(s.digest(&mech, MESSAGE).unwrap(), digest_of(hash, MESSAGE));
        s.digest_init(&mech).unwrap();
        s.digest_update(&MESSAGE[..5]).unwrap();
        s.digest_update(&MESSAGE[5..]).unwrap();
        assert_eq!(s.digest_final().unwrap(), digest_of(hash, MESSAGE));
    }

    let pk = rsa::RsaPublicKey::from_public_key_der(&rsa_key.spki).unwrap();
    let mut rng = rand::thread_rng();
    let secret = b"session key material";
    let ct = pk.encrypt(&mut rng, rsa::Pkcs1v15Encrypt, secret).unwrap();
    assert_eq!(s.decrypt(&Mechanism::RsaPkcs, key, &ct).unwrap(), secret);
    let ct = pk
        .encrypt(&mut rng, rsa::Oaep::new::<Sha256>(), secret)
        .unwrap();
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    );
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcsOaep(oaep), key, &ct).unwrap(),
        secret
    );
    // A ciphertext that does not decrypt is an error, not garbage.
    let mut bad = ct.clone();
    bad[10] ^= 0x55;
    assert!(s.decrypt(&Mechanism::RsaPkcsOaep(oaep), key, &bad).is_err());

    // Mechanisms that do not fit the key.
    let ec = private_key_with_spki(&s, &p256_key.spki);
    assert!(matches!(
        s.sign(&Mechanism::Sha256RsaPkcs, ec, MESSAGE),
        Err(Error::Pkcs11(RvError::KeyTypeInconsistent, _))
    ));
    assert!(matches!(
        s.sign(&Mechanism::Sha256, key, MESSAGE),
        Err(Error::Pkcs11(RvError::MechanismInvalid, _))
    ));
    // PSS with a salt length the TPM does not use.
    let mut odd = pss("sha256");
    odd.s_len = 20.into();
    assert!(matches!(
        s.sign(
            &Mechanism::RsaPkcsPss(odd),
            key,
            &digest_of("sha256", MESSAGE)
        ),
        Err(Error::Pkcs11(RvError::MechanismParamInvalid, _))
    ));
}

#[test]
fn threads_sign_at_once() {
    let token = Token::start();
    let k = Arc::new(token.wrap_key(&token.store(), "t", "p256", None));
    let p = token.load();
    let slot = slot(&p);
    let failures = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (p, k, failures) = (p.clone(), k.clone(), failures.clone());
            std::thread::spawn(move || {
                let s = p.open_ro_session(slot).unwrap();
                let key = private_key_with_spki(&s, &k.spki);
                for _ in 0..5 {
                    match s.sign(&Mechanism::EcdsaSha256, key, MESSAGE) {
                        Ok(sig) => verify_ecdsa(&k.spki, "sha256", &sig),
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
}

#[test]
fn survives_a_tpmd_restart_mid_loop() {
    let mut token = Token::start();
    let k = Arc::new(token.wrap_key(&token.store(), "r", "rsa", None));
    let p = token.load();
    let slot = slot(&p);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let worker = {
        let (p, k, stop, done, failed) = (
            p.clone(),
            k.clone(),
            stop.clone(),
            done.clone(),
            failed.clone(),
        );
        std::thread::spawn(move || {
            let s = p.open_ro_session(slot).unwrap();
            let key = private_key_with_spki(&s, &k.spki);
            while !stop.load(Ordering::Relaxed) {
                match s.sign(&Mechanism::Sha256RsaPkcs, key, MESSAGE) {
                    Ok(sig) => {
                        verify_pkcs1(&k.spki, "sha256", &sig);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("C_Sign failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while done.load(Ordering::Relaxed) < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    wait_for(3);
    token.restart_tpmd();
    let before = done.load(Ordering::Relaxed);
    wait_for(before + 3);
    // A crash, too: calls in flight get no reply at all.
    token.kill_and_restart_tpmd();
    let before = done.load(Ordering::Relaxed);
    wait_for(before + 3);
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    assert!(
        done.load(Ordering::Relaxed) >= before + 3,
        "signing did not resume"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "a C_Sign failed across the restart"
    );
}

#[test]
fn login_uses_the_pin_as_key_auth() {
    let token = Token::start();
    let k = token.wrap_key(&token.store(), "guarded", "p256", Some("4711"));
    let open = token.wrap_key(&token.store(), "open", "p256", None);
    let p = token.load();
    let slot = slot(&p);
    let info = p.get_token_info(slot).unwrap();
    assert!(info.login_required());
    let s = p.open_ro_session(slot).unwrap();
    // Before login: the key with an auth value is hidden, the one without works.
    assert_eq!(
        find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).len(),
        1
    );
    let open_key = private_key_with_spki(&s, &open.spki);
    verify_ecdsa(
        &open.spki,
        "sha256",
        &s.sign(&Mechanism::EcdsaSha256, open_key, MESSAGE).unwrap(),
    );
    let wrong = s.login(UserType::User, Some(&AuthPin::new("0000".into())));
    assert!(
        matches!(wrong, Err(Error::Pkcs11(RvError::PinIncorrect, _))),
        "{wrong:?}"
    );
    s.login(UserType::User, Some(&AuthPin::new("4711".into())))
        .unwrap();
    assert!(matches!(
        s.login(UserType::User, Some(&AuthPin::new("4711".into()))),
        Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _))
    ));
    let key = private_key_with_spki(&s, &k.spki);
    verify_ecdsa(
        &k.spki,
        "sha256",
        &s.sign(&Mechanism::EcdsaSha256, key, MESSAGE).unwrap(),
    );
    s.logout().unwrap();
    assert_eq!(
        find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).len(),
        1
    );
    // Wrong PINs are rate limited by tpmd: after three, the next try is refused.
    let mut last = None;
    for _ in 0..4 {
        last = Some(s.login(UserType::User, Some(&AuthPin::new("9999".into()))));
        assert!(
            matches!(
                last,
                Some(Err(Error::Pkcs11(
                    RvError::PinIncorrect | RvError::PinLocked,
                    _
                )))
            ),
            "{last:?}"
        );
    }
    assert!(
        matches!(last, Some(Err(Error::Pkcs11(RvError::PinLocked, _)))),
        "{last:?}"
    );
}

#[test]
fn generates_imports_labels_and_destroys_keys() {
    let token = Token::start();
    let p = token.load();
    let s = p.open_rw_session(slot(&p)).unwrap();

    for (mech, public) in [
        (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
        ),
        (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(vec![
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ])],
        ),
    ] {
        let private = vec![
            Attribute::Label(b"made here".to_vec()),
            Attribute::Id(vec![0x42]),
            Attribute::Sign(true),
        ];
        let (pub_h, priv_h) = s.generate_key_pair(&mech, &public, &private).unwrap();
        let spki = match s
            .get_attributes(pub_h, &[AttributeType::PublicKeyInfo])
            .unwrap()[0]
            .clone()
        {
            Attribute::PublicKeyInfo(v) => v,
            other => panic!("{other:?}"),
        };
        let k = TestKey {
            tpm: Default::default(),
            spki,
            public_pem: Default::default(),
        };
        match mech {
            Mechanism::RsaPkcsKeyPairGen => verify_pkcs1(
                &k.spki,
                "sha256",
                &s.sign(&Mechanism::Sha256RsaPkcs, priv_h, MESSAGE).unwrap(),
            ),
            _ => verify_ecdsa(
                &k.spki,
                "sha256",
                &s.sign(&Mechanism::EcdsaSha256, priv_h, MESSAGE).unwrap(),
            ),
        }
        assert!(s
            .get_attributes(priv_h, &[AttributeType::Id])
            .unwrap()
            .contains(&Attribute::Id(vec![0x42])));
        s.destroy_object(priv_h).unwrap();
    }
    assert!(find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).is_empty());

    // C_CreateObject of a software key: wrapped in the module, only the blob is stored.
    let mut rng = rand::thread_rng();
    let sw = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let created = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Label(b"imported".to_vec()),
            Attribute::Id(vec![7, 7]),
            Attribute::Modulus(sw.n().to_bytes_be()),
            Attribute::PublicExponent(sw.e().to_bytes_be()),
            Attribute::PrivateExponent(sw.d().to_bytes_be()),
            Attribute::Prime1(sw.primes()[0].to_bytes_be()),
            Attribute::Prime2(sw.primes()[1].to_bytes_be()),
        ])
        .unwrap();
    use rsa::pkcs8::EncodePublicKey;
    let spki = sw
        .to_public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    verify_pkcs1(
        &spki,
        "sha256",
        &s.sign(&Mechanism::Sha256RsaPkcs, created, MESSAGE).unwrap(),
    );
    let stored: Vec<_> = std::fs::read_dir(token.store())
        .unwrap()
        .flatten()
        .collect();
    let key_file = stored
        .iter()
        .find(|e| e.file_name().to_string_lossy().ends_with(".tpm"))
        .expect("no key file in the store");
    let text = std::fs::read_to_string(key_file.path()).unwrap();
    assert!(text.starts_with("-----BEGIN TSS2 PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        key_file.metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );

    // An EC key is imported the same way.
    let ec = p256::SecretKey::random(&mut rng);
    let ec_handle = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Label(b"imported-ec".to_vec()),
            Attribute::EcParams(vec![
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ]),
            Attribute::Value(ec.to_bytes().to_vec()),
        ])
        .unwrap();
    let ec_spki = ec
        .public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    verify_ecdsa(
        &ec_spki,
        "sha256",
        &s.sign(&Mechanism::EcdsaSha256, ec_handle, MESSAGE).unwrap(),
    );
    s.destroy_object(ec_handle).unwrap();

    // A certificate for it gets the key's CKA_ID.
    let key_pem = token.env.path("sw.pem");
    use rsa::pkcs8::EncodePrivateKey;
    sw.write_pkcs8_pem_file(&key_pem, rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let cert_der = token.env.path("sw.der");
    tpmd_tests::tools::run(
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &key_pem.display().to_string(),
            "-subj",
            "/CN=tpmd test",
            "-days",
            "1",
            "-outform",
            "DER",
            "-out",
            &cert_der.display().to_string(),
        ],
    );
    let der = std::fs::read(&cert_der).unwrap();
    let cert = s
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Id(vec![7, 7]),
            Attribute::Value(der.clone()),
        ])
        .unwrap();
    let by_id = find(&s, &[Attribute::Id(vec![7, 7])]);
    assert_eq!(
        by_id.len(),
        3,
        "private, public and certificate share CKA_ID"
    );
    assert!(by_id.contains(&cert));
    assert!(s
        .get_attributes(cert, &[AttributeType::Value])
        .unwrap()
        .contains(&Attribute::Value(der)));

    // Labels can be changed; the change survives a reload.
    s.update_attributes(created, &[Attribute::Label(b"renamed".to_vec())])
        .unwrap();
    drop(s);
    drop(p);
    let p = token.load();
    let s = p.open_rw_session(slot(&p)).unwrap();
    let renamed = find(
        &s,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"renamed".to_vec()),
        ],
    );
    assert_eq!(renamed.len(), 1);
    // Read-only sessions cannot change token objects.
    let ro = p.open_ro_session(slot(&p)).unwrap();
    assert!(matches!(
        ro.destroy_object(renamed[0]),
        Err(Error::Pkcs11(RvError::SessionReadOnly, _))
    ));
    s.destroy_object(renamed[0]).unwrap();
    assert!(find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).is_empty());
}
