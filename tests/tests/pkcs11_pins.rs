//! Per-key PINs in libtpmd_pkcs11.so: a key whose auth value is not the token PIN has
//! CKA_ALWAYS_AUTHENTICATE and takes its own PIN with C_Login(CKU_CONTEXT_SPECIFIC) for
//! each operation, next to keys that take the token PIN, in one session: through the
//! cryptoki crate and through OpenSSL with the libp11 engine (a small C program,
//! tests/interop/libp11-two-pins.c, whose PIN dialog answers each key's PIN). A wrong context-specific
//! PIN reaches tpmd like any wrong auth value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use tpmd_tests::pkcs11::{
    build_libp11_two_pins, module_path, object_with_spki, pin, sign_with_context_pin, slot,
    wrong_auth_lines, TestKey, Token,
};
use tpmd_tests::tools::ok;

const MESSAGE: &[u8] = b"two keys, two PINs, one session";

fn always_authenticate(s: &Session, key: ObjectHandle) -> bool {
    match s
        .get_attributes(key, &[AttributeType::AlwaysAuthenticate])
        .unwrap()
        .remove(0)
    {
        Attribute::AlwaysAuthenticate(b) => b,
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_with_their_own_pin_sign_in_one_session_with_the_token_pin_keys() {
    let token = Token::start();
    let a = token.wrap_key(&token.store(), "a-token-pin", "p256", Some("1111"));
    let b = token.wrap_key(&token.store(), "b-own-pin", "rsa", Some("2222"));
    let c = token.wrap_key(&token.store(), "c-same-pin", "p384", Some("1111"));
    let open = token.wrap_key(&token.store(), "d-no-pin", "p256", None);
    let p = token.load();
    let s = p.open_rw_session(slot(&p)).unwrap();
    // Before login no key with a PIN is visible, so no context login can be tried.
    assert!(matches!(
        s.login(UserType::ContextSpecific, Some(&pin("2222"))),
        Err(Error::Pkcs11(RvError::UserNotLoggedIn, _))
    ));
    s.login(UserType::User, Some(&pin("1111"))).unwrap();
    assert!(matches!(
        s.login(UserType::ContextSpecific, Some(&pin("2222"))),
        Err(Error::Pkcs11(RvError::OperationNotInitialized, _))
    ));
    let key = |k: &TestKey| object_with_spki(&s, ObjectClass::PRIVATE_KEY, &k.spki);
    // C_Login checked the token PIN against the first key: it takes the token PIN. The
    // others have an auth value the module has not seen work with the token PIN.
    assert!(!always_authenticate(&s, key(&a)));
    assert!(always_authenticate(&s, key(&b)));
    assert!(always_authenticate(&s, key(&c)));
    assert!(!always_authenticate(&s, key(&open)));

    let rsa = Mechanism::Sha256RsaPkcs;
    let ecdsa = Mechanism::EcdsaSha256;
    for round in 0..2 {
        // Interleaved in one session: the token-PIN key, the own-PIN key, the key without.
        sign_with_context_pin(&s, &ecdsa, &a, None).unwrap();
        sign_with_context_pin(&s, &rsa, &b, Some("2222"))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        sign_with_context_pin(&s, &ecdsa, &open, None).unwrap();
    }
    // Without its context login the own-PIN key waits for one (the operation stays).
    let kb = key(&b);
    s.sign_init(&rsa, kb).unwrap();
    s.sign_update(MESSAGE).unwrap();
    assert!(matches!(
        s.sign_final(),
        Err(Error::Pkcs11(RvError::UserNotLoggedIn, _))
    ));
    // A wrong context PIN is refused by the TPM through tpmd, where it is counted.
    let before = wrong_auth_lines(&token);
    assert!(matches!(
        s.login(UserType::ContextSpecific, Some(&pin("1111"))),
        Err(Error::Pkcs11(RvError::PinIncorrect, _))
    ));
    assert_eq!(
        wrong_auth_lines(&token),
        before + 1,
        "tpmd did not see the wrong PIN"
    );
    s.login(UserType::ContextSpecific, Some(&pin("2222")))
        .unwrap();
    let sig = s.sign_final().unwrap();
    let public = object_with_spki(&s, ObjectClass::PUBLIC_KEY, &b.spki);
    s.verify(&rsa, public, MESSAGE, &sig).unwrap();
    // The PIN served one operation only.
    assert!(matches!(
        sign_with_context_pin(&s, &rsa, &b, None),
        Err(Error::Pkcs11(RvError::UserNotLoggedIn, _))
    ));
    s.login(UserType::ContextSpecific, Some(&pin("2222")))
        .unwrap();
    s.sign_final().unwrap();

    // A key whose own PIN turns out to be the token PIN takes the token PIN from then
    // on, in this process and the next.
    sign_with_context_pin(&s, &Mechanism::EcdsaSha384, &c, Some("1111")).unwrap();
    assert!(!always_authenticate(&s, key(&c)));
    sign_with_context_pin(&s, &Mechanism::EcdsaSha384, &c, None).unwrap();
    drop(s);
    p.finalize();
    let p = token.load();
    let s = p.open_ro_session(slot(&p)).unwrap();
    s.login(UserType::User, Some(&pin("1111"))).unwrap();
    let key = |k: &TestKey| object_with_spki(&s, ObjectClass::PRIVATE_KEY, &k.spki);
    assert!(!always_authenticate(&s, key(&c)));
    assert!(always_authenticate(&s, key(&b)));

    // Wrong context PINs count against the caller's budget in tpmd: soon refused.
    let mut last = None;
    for _ in 0..4 {
        // A session per try: closing it ends the operation that waits for its PIN.
        let attempt = p.open_ro_session(slot(&p)).unwrap();
        attempt.sign_init(&rsa, key(&b)).unwrap();
        last = Some(attempt.login(UserType::ContextSpecific, Some(&pin("9999"))));
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
fn openssl_and_libp11_sign_with_two_keys_of_different_pins_in_one_process() {
    let token = Token::start();
    let a = token.wrap_key(&token.store(), "signer-a", "rsa", Some("1111"));
    let b = token.wrap_key(&token.store(), "signer-b", "p256", Some("2222"));
    let data = token.env.path("message.txt");
    std::fs::write(&data, MESSAGE).unwrap();
    let driver = build_libp11_two_pins(&token.env.path(""));
    let rounds = 3;
    let out = token
        .command(&driver.display().to_string())
        .arg(module_path())
        .arg("1111")
        .arg(&data)
        .arg(rounds.to_string())
        .args(["signer-a", "1111", "signer-b", "2222"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = ok(&out);
    // The token PIN once, for the login; the second key's own PIN for every signature
    // it makes (libp11's context-specific login); never a PIN for the first key.
    assert_eq!(log.matches("asked: token").count(), 1, "{log}");
    assert_eq!(log.matches("asked: signer-b").count(), rounds, "{log}");
    assert_eq!(log.matches("asked: signer-a").count(), 0, "{log}");
    for round in 0..rounds {
        for (label, k) in [("signer-a", &a), ("signer-b", &b)] {
            let sig = token.env.path(&format!("{label}.sig.{round}"));
            let verified = Command::new("openssl")
                .args(["dgst", "-sha256", "-verify"])
                .arg(&k.public_pem)
                .arg("-signature")
                .arg(&sig)
                .arg(&data)
                .output()
                .unwrap();
            assert!(
                verified.status.success(),
                "{label} round {round}: {}",
                String::from_utf8_lossy(&verified.stdout)
            );
        }
    }
}
