//! C_SetPIN in libtpmd_pkcs11.so: the token PIN and a key's own PIN change through
//! tpmd's ChangeAuth (TPM2_ObjectChangeAuth); the key files are replaced, the new PIN
//! signs and the old one is refused, in this process and the next.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectClass;
use cryptoki::session::UserType;
use tpmd_tests::daemon::TestEnv;
use tpmd_tests::pkcs11::{
    object_with_spki, pin, sign_with_context_pin, slot, wrong_auth_lines, Token,
};

#[test]
fn set_pin_changes_the_token_pin_and_a_keys_own_pin() {
    // Wrong PINs below: with swtpm's default maxTries of 3, tpmd's dictionary-attack
    // budget would refuse the right PIN after two of them until the TPM forgets one.
    let token = Token::start_on(|| async {
        let sim = tpmd_simulator::Simulator::start_temporary().unwrap();
        sim.set_dictionary_attack_parameters(8, 1000, 1000).unwrap();
        TestEnv::start_on(sim, &[]).await
    });
    let a = token.wrap_key(&token.store(), "a-token", "p256", Some("1111"));
    let b = token.wrap_key(&token.store(), "b-own", "rsa", Some("2222"));
    let ecdsa = Mechanism::EcdsaSha256;
    let rsa = Mechanism::Sha256RsaPkcs;
    let before = std::fs::read(&a.tpm).unwrap();

    let p = token.load();
    let ro = p.open_ro_session(slot(&p)).unwrap();
    let s = p.open_rw_session(slot(&p)).unwrap();
    s.login(UserType::User, Some(&pin("1111"))).unwrap();
    assert!(matches!(
        ro.set_pin(&pin("1111"), &pin("3333")),
        Err(Error::Pkcs11(RvError::SessionReadOnly, _))
    ));
    // Logged in, the module knows the token PIN: a wrong old one costs no TPM try.
    let tries = wrong_auth_lines(&token);
    assert!(matches!(
        s.set_pin(&pin("9999"), &pin("3333")),
        Err(Error::Pkcs11(RvError::PinIncorrect, _))
    ));
    assert_eq!(wrong_auth_lines(&token), tries);
    // A key with a PIN keeps one.
    assert!(matches!(
        s.set_pin(&pin("1111"), &pin("")),
        Err(Error::Pkcs11(RvError::PinLenRange, _))
    ));

    // The token PIN: the key file is replaced, the new PIN signs at once.
    s.set_pin(&pin("1111"), &pin("3333")).unwrap();
    let after = std::fs::read(&a.tpm).unwrap();
    assert_ne!(before, after, "the key file was not rewritten");
    let mode = std::fs::metadata(&a.tpm).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(token.store())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    sign_with_context_pin(&s, &ecdsa, &a, None).unwrap();

    // A key's own PIN: named by the operation it is initialized for.
    let kb = object_with_spki(&s, ObjectClass::PRIVATE_KEY, &b.spki);
    s.sign_init(&rsa, kb).unwrap();
    s.set_pin(&pin("2222"), &pin("4444")).unwrap();
    assert!(
        matches!(
            s.sign_final(),
            Err(Error::Pkcs11(RvError::OperationNotInitialized, _))
        ),
        "the operation on the replaced key file ended"
    );
    assert!(matches!(
        sign_with_context_pin(&s, &rsa, &b, Some("2222")),
        Err(Error::Pkcs11(RvError::PinIncorrect, _))
    ));
    // (The failed context login left the operation waiting: a new session.)
    let s2 = p.open_rw_session(slot(&p)).unwrap();
    sign_with_context_pin(&s2, &rsa, &b, Some("4444")).unwrap();
    drop((s, s2, ro));
    p.finalize();

    // The next process: old PINs refused, new ones sign.
    let p = token.load();
    let s = p.open_rw_session(slot(&p)).unwrap();
    assert!(matches!(
        s.login(UserType::User, Some(&pin("1111"))),
        Err(Error::Pkcs11(RvError::PinIncorrect, _))
    ));
    s.login(UserType::User, Some(&pin("3333"))).unwrap();
    sign_with_context_pin(&s, &ecdsa, &a, None).unwrap();
    sign_with_context_pin(&s, &rsa, &b, Some("4444")).unwrap();
    s.logout().unwrap();
    // Not logged in, C_SetPIN presents the old PIN to the TPM with the change itself.
    s.set_pin(&pin("3333"), &pin("5555")).unwrap();
    s.login(UserType::User, Some(&pin("5555"))).unwrap();
    sign_with_context_pin(&s, &ecdsa, &a, None).unwrap();
}
