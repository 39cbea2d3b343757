//! What libtpmd_pkcs11.so computes with public keys, and what it asks the TPM for beyond
//! signatures, through the cryptoki crate against tpmd on a fresh simulator:
//! C_Verify for every signing mechanism (the token's signatures and openssl's), C_Encrypt
//! with PKCS#1 v1.5 and OAEP whose ciphertexts openssl and the TPM decrypt, OAEP labels
//! the TPM takes and labels it does not, and C_GenerateRandom from the TPM's generator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use tpmd_tests::pkcs11::{object_with_spki, slot, Token};
use tpmd_tests::tools::run;

const MESSAGE: &[u8] = b"the quick brown fox jumps over the lazy dog";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps a copy of the plaintext key for openssl.
fn keep(to: PathBuf) -> impl FnOnce(&Path) {
    move |plain| {
        std::fs::copy(plain, &to).unwrap();
    }
}

fn rsa_pss(hash: MechanismType, mgf: PkcsMgfType, len: u64) -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: hash,
        mgf,
        s_len: len.into(),
    }
}

fn sign_mechanisms_rsa() -> Vec<(&'static str, Mechanism<'static>)> {
    vec![
        ("sha1-pkcs1", Mechanism::Sha1RsaPkcs),
        ("sha256-pkcs1", Mechanism::Sha256RsaPkcs),
        ("sha384-pkcs1", Mechanism::Sha384RsaPkcs),
        ("sha512-pkcs1", Mechanism::Sha512RsaPkcs),
        ("raw-pkcs1", Mechanism::RsaPkcs),
        (
            "pss",
            Mechanism::RsaPkcsPss(rsa_pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32)),
        ),
        (
            "sha256-pss",
            Mechanism::Sha256RsaPkcsPss(rsa_pss(
                MechanismType::SHA256,
                PkcsMgfType::MGF1_SHA256,
                32,
            )),
        ),
        (
            "sha384-pss",
            Mechanism::Sha384RsaPkcsPss(rsa_pss(
                MechanismType::SHA384,
                PkcsMgfType::MGF1_SHA384,
                48,
            )),
        ),
        (
            "sha512-pss",
            Mechanism::Sha512RsaPkcsPss(rsa_pss(
                MechanismType::SHA512,
                PkcsMgfType::MGF1_SHA512,
                64,
            )),
        ),
    ]
}

fn sign_mechanisms_ec() -> Vec<(&'static str, Mechanism<'static>)> {
    vec![
        ("ecdsa", Mechanism::Ecdsa),
        ("ecdsa-sha1", Mechanism::EcdsaSha1),
        ("ecdsa-sha256", Mechanism::EcdsaSha256),
        ("ecdsa-sha384", Mechanism::EcdsaSha384),
        ("ecdsa-sha512", Mechanism::EcdsaSha512),
    ]
}

/// What a mechanism signs: the raw ones take a digest (PSS, ECDSA) or a DigestInfo.
fn input_for(name: &str) -> Vec<u8> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(MESSAGE).to_vec();
    match name {
        "pss" | "ecdsa" => digest,
        "raw-pkcs1" => {
            let mut di = vec![
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ];
            di.extend(digest);
            di
        }
        _ => MESSAGE.to_vec(),
    }
}

fn check_verification(
    s: &Session,
    private: ObjectHandle,
    public: ObjectHandle,
    mechs: &[(&str, Mechanism)],
) {
    for (name, mech) in mechs {
        let input = input_for(name);
        let sig = s.sign(mech, private, &input).unwrap();
        s.verify(mech, public, &input, &sig)
            .unwrap_or_else(|e| panic!("{name}: the token refuses its own signature: {e}"));
        // The private-key object verifies too (with its public half).
        s.verify(mech, private, &input, &sig).unwrap();
        let mut other = input.clone();
        other[0] ^= 1;
        let err = s.verify(mech, public, &other, &sig).unwrap_err();
        assert!(
            matches!(err, Error::Pkcs11(RvError::SignatureInvalid, _)),
            "{name}: {err:?}"
        );
        let err = s.verify(mech, public, &input, &sig[1..]).unwrap_err();
        assert!(
            matches!(err, Error::Pkcs11(RvError::SignatureLenRange, _)),
            "{name}: {err:?}"
        );
        // Multi-part, for the mechanisms that hash here.
        if !matches!(*name, "pss" | "ecdsa" | "raw-pkcs1") {
            s.verify_init(mech, public).unwrap();
            s.verify_update(&input[..10]).unwrap();
            s.verify_update(&input[10..]).unwrap();
            s.verify_final(&sig).unwrap();
        }
    }
}

#[test]
fn verify_checks_every_signing_mechanism() {
    let token = Token::start();
    let data = token.env.path("data");
    std::fs::write(&data, MESSAGE).unwrap();
    let openssl_sig = token.env.path("openssl.sig");
    let sign_with_openssl = |plain: &Path| {
        run(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-sign",
                &plain.display().to_string(),
                "-out",
                &openssl_sig.display().to_string(),
                &data.display().to_string(),
            ],
        );
    };
    let rsa = token.wrap_key_with(&token.store(), "rsa", "rsa", None, sign_with_openssl);
    let by_openssl = std::fs::read(&openssl_sig).unwrap();
    let p256 = token.wrap_key(&token.store(), "p256", "p256", None);
    let p384 = token.wrap_key(&token.store(), "p384", "p384", None);

    let p = token.load();
    let s = p.open_ro_session(slot(&p)).unwrap();
    let public = object_with_spki(&s, ObjectClass::PUBLIC_KEY, &rsa.spki);
    let attrs = s
        .get_attributes(public, &[AttributeType::Verify, AttributeType::Encrypt])
        .unwrap();
    assert_eq!(
        attrs,
        vec![Attribute::Verify(true), Attribute::Encrypt(true)]
    );

    // A signature openssl made with the original key verifies (and a wrong one does not).
    s.verify(&Mechanism::Sha256RsaPkcs, public, MESSAGE, &by_openssl)
        .unwrap();
    assert!(s
        .verify(&Mechanism::Sha256RsaPkcs, public, b"other", &by_openssl)
        .is_err());

    let private = object_with_spki(&s, ObjectClass::PRIVATE_KEY, &rsa.spki);
    check_verification(&s, private, public, &sign_mechanisms_rsa());
    for k in [&p256, &p384] {
        let private = object_with_spki(&s, ObjectClass::PRIVATE_KEY, &k.spki);
        let public = object_with_spki(&s, ObjectClass::PUBLIC_KEY, &k.spki);
        assert_eq!(
            s.get_attributes(public, &[AttributeType::Encrypt]).unwrap(),
            vec![Attribute::Encrypt(false)],
            "EC keys do not encrypt"
        );
        check_verification(&s, private, public, &sign_mechanisms_ec());
    }
    // A mechanism for another key type, and a key that cannot encrypt.
    let ec_public = object_with_spki(&s, ObjectClass::PUBLIC_KEY, &p256.spki);
    assert!(matches!(
        s.verify(&Mechanism::Sha256RsaPkcs, ec_public, MESSAGE, &[0; 64]),
        Err(Error::Pkcs11(RvError::KeyTypeInconsistent, _))
    ));
    assert!(s.encrypt(&Mechanism::RsaPkcs, ec_public, b"x").is_err());
}

fn oaep<'a>(hash: MechanismType, mgf: PkcsMgfType, label: &'a [u8]) -> Mechanism<'a> {
    let source = if label.is_empty() {
        PkcsOaepSource::empty()
    } else {
        PkcsOaepSource::data_specified(label)
    };
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, source))
}

fn openssl_oaep_args(hash: &str, label: &[u8]) -> Vec<String> {
    let mut args = vec![
        "-pkeyopt".to_string(),
        "rsa_padding_mode:oaep".into(),
        "-pkeyopt".into(),
        format!("rsa_oaep_md:{hash}"),
        "-pkeyopt".into(),
        format!("rsa_mgf1_md:{hash}"),
    ];
    if !label.is_empty() {
        args.extend(["-pkeyopt".into(), format!("rsa_oaep_label:{}", hex(label))]);
    }
    args
}

/// openssl pkeyutl with the plaintext key (`-decrypt`) or its public key (`-encrypt`).
fn pkeyutl(token: &Token, op: &str, key: &[&str], pad: &[String], input: &[u8]) -> Vec<u8> {
    let inp = token.env.path("pkeyutl.in");
    let outp = token.env.path("pkeyutl.out");
    std::fs::write(&inp, input).unwrap();
    let mut args: Vec<String> = vec!["pkeyutl".into(), op.into()];
    args.extend(key.iter().map(|s| s.to_string()));
    args.extend(pad.iter().cloned());
    args.extend([
        "-in".into(),
        inp.display().to_string(),
        "-out".into(),
        outp.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("openssl", &args);
    std::fs::read(&outp).unwrap()
}

#[test]
fn encrypt_and_decrypt_with_pkcs1_and_oaep_labels() {
    let token = Token::start();
    let plain_copy = token.env.path("rsa-plain.pem");
    let rsa = token.wrap_key_with(&token.store(), "rsa", "rsa", None, keep(plain_copy.clone()));
    let plain = plain_copy.display().to_string();
    let public_pem = rsa.public_pem.display().to_string();
    let p = token.load();
    let s = p.open_ro_session(slot(&p)).unwrap();
    let public = object_with_spki(&s, ObjectClass::PUBLIC_KEY, &rsa.spki);
    let private = object_with_spki(&s, ObjectClass::PRIVATE_KEY, &rsa.spki);
    let counters = || {
        token.rt.block_on(async {
            let c = token.env.proxy().await.get_counters().await.unwrap();
            c.tpm_commands.unwrap_or_default()
        })
    };

    // PKCS#1 v1.5: encrypted here, decrypted by the TPM and by openssl.
    let ct = s
        .encrypt(&Mechanism::RsaPkcs, public, b"pre-master")
        .unwrap();
    assert_eq!(ct.len(), 256);
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, private, &ct).unwrap(),
        b"pre-master"
    );
    let by_openssl = pkeyutl(&token, "-decrypt", &["-inkey", &plain], &[], &ct);
    assert_eq!(by_openssl, b"pre-master");
    assert!(matches!(
        s.encrypt(&Mechanism::RsaPkcs, public, &[1; 246]),
        Err(Error::Pkcs11(RvError::DataLenRange, _))
    ));

    let cases: [(&str, MechanismType, PkcsMgfType, &[u8]); 5] = [
        ("sha1", MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, b""),
        (
            "sha256",
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            b"",
        ),
        // Labels TPM2_RSA_Decrypt takes: the last byte is zero.
        (
            "sha256",
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            b"tls label\0",
        ),
        // Labels it does not: decrypted raw in the TPM, the padding removed in the module.
        (
            "sha256",
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            b"tls label",
        ),
        (
            "sha384",
            MechanismType::SHA384,
            PkcsMgfType::MGF1_SHA384,
            b"\xff\x00binary",
        ),
    ];
    for (hash, ck_hash, mgf, label) in cases {
        let what = format!("OAEP {hash} label {label:?}");
        let mech = oaep(ck_hash, mgf, label);
        let before = counters().get("RSA_Decrypt").copied().unwrap_or(0);
        // Ours, decrypted by the TPM and by openssl.
        let ct = s.encrypt(&mech, public, b"session key").unwrap();
        assert_eq!(
            s.decrypt(&mech, private, &ct).unwrap(),
            b"session key",
            "{what}"
        );
        let pad = openssl_oaep_args(hash, label);
        let by_openssl = pkeyutl(&token, "-decrypt", &["-inkey", &plain], &pad, &ct);
        assert_eq!(by_openssl, b"session key", "{what}: openssl disagrees");
        // openssl's, decrypted by the TPM.
        let ct = pkeyutl(
            &token,
            "-encrypt",
            &["-pubin", "-inkey", &public_pem],
            &pad,
            b"from openssl",
        );
        assert_eq!(
            s.decrypt(&mech, private, &ct).unwrap(),
            b"from openssl",
            "{what}"
        );
        assert_eq!(
            counters().get("RSA_Decrypt").copied().unwrap_or(0),
            before + 2,
            "{what}: each decryption is one TPM2_RSA_Decrypt"
        );
        // Another label does not decrypt.
        let wrong = oaep(ck_hash, mgf, b"another label");
        assert!(
            matches!(
                s.decrypt(&wrong, private, &ct),
                Err(Error::Pkcs11(RvError::EncryptedDataInvalid, _))
            ),
            "{what}"
        );
    }
    // MGF1 must use the label's hash, as the TPM's OAEP does.
    assert!(matches!(
        s.encrypt(
            &oaep(MechanismType::SHA256, PkcsMgfType::MGF1_SHA1, b""),
            public,
            b"x"
        ),
        Err(Error::Pkcs11(RvError::MechanismParamInvalid, _))
    ));
}

#[test]
fn random_bytes_come_from_the_tpm() {
    let token = Token::start();
    let p = token.load();
    let s = p.open_ro_session(slot(&p)).unwrap();
    let get_random_commands = || {
        token.rt.block_on(async {
            let c = token.env.proxy().await.get_counters().await.unwrap();
            c.tpm_commands
                .unwrap_or_default()
                .get("GetRandom")
                .copied()
                .unwrap_or(0)
        })
    };
    let before = get_random_commands();
    for len in [1u32, 64, 100, 5000] {
        assert_eq!(s.generate_random_vec(len).unwrap().len(), len as usize);
    }
    let after = get_random_commands();
    // The TPM hands out at most a digest's worth per TPM2_GetRandom.
    assert!(
        after - before >= 5000 / 64,
        "{} TPM2_GetRandom for 5165 bytes",
        after - before
    );
    let a = s.generate_random_vec(32).unwrap();
    let b = s.generate_random_vec(32).unwrap();
    assert_ne!(a, b);
    assert!(matches!(
        s.seed_random(b"entropy"),
        Err(Error::Pkcs11(RvError::RandomSeedNotSupported, _))
    ));
}
