//! C_Login from several threads of one application, through the cryptoki crate: a PIN is
//! checked through tpmd before the application counts as logged in, so no other thread
//! ever sees a logged-in state (or uses the PIN) that then turns out wrong, and two
//! logins at once cannot undo each other.
//!
//! The simulator gets maxTries 32 before tpmd starts, so the few wrong PINs here stay far
//! from any limit of tpmd's or the TPM's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::types::AuthPin;
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;
use tpmd_simulator::Simulator;
use tpmd_tests::pkcs11::{TestKey, Token};
use tpmd_tests::tools::tpm2_tools_ok;
use tpmd_tests::TestEnv;

const MESSAGE: &[u8] = b"signed after a checked login";

fn token_with_room_for_wrong_pins() -> Token {
    Token::start_on(|| async {
        let sim = Simulator::start_temporary().unwrap();
        let dir = tempfile::tempdir().unwrap();
        tpm2_tools_ok(
            &sim,
            dir.path(),
            "tpm2_dictionarylockout -s -n 32 -t 600 -l 600",
        );
        TestEnv::start_on(sim, &[]).await
    })
}

fn pin(value: &str) -> AuthPin {
    AuthPin::new(value.into())
}

fn logged_in(s: &Session) -> bool {
    s.get_session_info().unwrap().session_state() == SessionState::RoUser
}

fn key_with_spki(s: &Session, k: &TestKey) -> ObjectHandle {
    s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
        .into_iter()
        .find(|h| {
            s.get_attributes(*h, &[cryptoki::object::AttributeType::PublicKeyInfo])
                .unwrap()
                .iter()
                .any(|a| matches!(a, Attribute::PublicKeyInfo(spki) if *spki == k.spki))
        })
        .expect("the key is not visible")
}

fn sign_and_verify(s: &Session, k: &TestKey) {
    let signature = s
        .sign(&Mechanism::EcdsaSha256, key_with_spki(s, k), MESSAGE)
        .unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&signature).unwrap();
    p256::ecdsa::VerifyingKey::from_public_key_der(&k.spki)
        .unwrap()
        .verify(MESSAGE, &signature)
        .unwrap();
}

/// While one thread tries a wrong PIN, another polls its own session's state: it must
/// never see the application logged in.
fn wrong_pin_is_never_visible(p: &Pkcs11) {
    let slot = p.get_slots_with_token().unwrap()[0];
    let stop = AtomicBool::new(false);
    let (polls, seen_logged_in) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let s = p.open_ro_session(slot).unwrap();
            let (mut polls, mut seen) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                polls += 1;
                if logged_in(&s) {
                    seen += 1;
                }
            }
            (polls, seen)
        });
        let s = p.open_ro_session(slot).unwrap();
        let wrong = s.login(UserType::User, Some(&pin("0000")));
        stop.store(true, Ordering::Relaxed);
        assert!(
            matches!(wrong, Err(Error::Pkcs11(RvError::PinIncorrect, _))),
            "{wrong:?}"
        );
        watcher.join().unwrap()
    });
    assert!(polls > 0, "the watcher never looked");
    assert_eq!(
        seen_logged_in, 0,
        "another thread saw the application logged in with a wrong PIN ({seen_logged_in} of {polls} looks)"
    );
}

/// The right and a wrong PIN from two threads at the same moment: the right one logs in
/// and stays logged in, whichever is checked first.
fn right_and_wrong_at_once(p: &Pkcs11, k: &TestKey) {
    let slot = p.get_slots_with_token().unwrap()[0];
    // Closing an application's last session logs it out: this one stays open throughout.
    let holder = p.open_ro_session(slot).unwrap();
    let start = Barrier::new(2);
    let (right, wrong) = std::thread::scope(|scope| {
        let wrong = scope.spawn(|| {
            let s = p.open_ro_session(slot).unwrap();
            start.wait();
            s.login(UserType::User, Some(&pin("9999")))
        });
        let s = p.open_ro_session(slot).unwrap();
        start.wait();
        let right = s.login(UserType::User, Some(&pin("4711")));
        (right, wrong.join().unwrap())
    });
    assert!(right.is_ok(), "the right PIN was refused: {right:?}");
    assert!(
        matches!(
            wrong,
            Err(Error::Pkcs11(
                RvError::PinIncorrect | RvError::UserAlreadyLoggedIn,
                _
            ))
        ),
        "{wrong:?}"
    );
    assert!(
        logged_in(&holder),
        "the wrong PIN's failure logged the right one out"
    );
    sign_and_verify(&holder, k);
}

#[test]
fn a_pin_is_checked_before_other_threads_use_it() {
    let token = token_with_room_for_wrong_pins();
    let k = token.wrap_key(&token.store(), "guarded", "p256", Some("4711"));
    let p = token.load();
    wrong_pin_is_never_visible(&p);
    right_and_wrong_at_once(&p, &k);
}
