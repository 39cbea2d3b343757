//! The wire codec and the software session against a real TPM (swtpm): every command
//! tpmd sends, with password and salted HMAC sessions, parameter encryption both ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tpmd_api::marshal::*;
use tpmd_api::public::{EccCurve, KeyParams, TpmPublic};
use tpmd_simulator::Simulator;
use tpmd_tpm2::session::{Crypt, HmacSession};
use tpmd_tpm2::srk::SRK_HANDLE;
use tpmd_tpm2::tpm::{Tpm, TpmCallError};
use tpmd_tpm2::wire::ops::{self, CapabilityData, DecryptScheme, SignScheme, Signature};
use tpmd_tpm2::wire::{handle, AuthCommand, Command, Response};
use tpmd_transport::CommandCounter;

fn template(rsa: bool, auth: bool) -> TpmPublic {
    let mut attributes = TPMA_OBJECT_FIXED_TPM
        | TPMA_OBJECT_FIXED_PARENT
        | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN
        | TPMA_OBJECT_USER_WITH_AUTH
        | TPMA_OBJECT_SIGN;
    if rsa {
        attributes |= TPMA_OBJECT_DECRYPT;
    }
    if !auth {
        attributes |= TPMA_OBJECT_NO_DA;
    }
    TpmPublic {
        name_alg: TPM_ALG_SHA256,
        attributes,
        auth_policy: vec![],
        symmetric: None,
        scheme: TPM_ALG_NULL,
        scheme_hash: TPM_ALG_NULL,
        kdf: TPM_ALG_NULL,
        kdf_hash: TPM_ALG_NULL,
        key: if rsa {
            KeyParams::Rsa {
                bits: 2048,
                exponent: 0,
                modulus: vec![],
            }
        } else {
            KeyParams::Ecc {
                curve: EccCurve::NistP256,
                x: vec![],
                y: vec![],
            }
        },
    }
}

struct Fixture {
    _sim: Simulator,
    tpm: Tpm,
    srk: TpmPublic,
    srk_name: Vec<u8>,
    counter: CommandCounter,
}

fn fixture() -> Fixture {
    let sim = Simulator::start_temporary().unwrap();
    let counter = CommandCounter::default();
    let mut tpm = Tpm::open(&sim.transport(), Some(counter.clone())).unwrap();
    let response = tpm.execute(&ops::read_public(SRK_HANDLE), &[]).unwrap();
    let (public, srk_name) = ops::parse_read_public(&response).unwrap();
    let srk = TpmPublic::from_tpm2b(&public).unwrap();
    assert_eq!(srk.name().unwrap(), srk_name);
    Fixture {
        _sim: sim,
        tpm,
        srk,
        srk_name,
        counter,
    }
}

fn start_session(f: &mut Fixture, salted: bool) -> HmacSession {
    let (cmd, pending) = HmacSession::start(salted.then_some((SRK_HANDLE, &f.srk))).unwrap();
    let response = f.tpm.execute(&cmd, &[]).unwrap();
    HmacSession::started(pending, &response).unwrap()
}

/// Runs `cmd` under `session` for an entity with `auth`, checking the response HMAC.
fn run_hmac(
    f: &mut Fixture,
    session: &mut HmacSession,
    cmd: Command,
    names: &[&[u8]],
    auth: &[u8],
    crypt: Crypt,
) -> Result<Response, TpmCallError> {
    loop {
        // A fresh copy each time: parameter encryption works in place.
        let mut attempt = cmd.clone();
        let (auth_cmd, call) = session.authorize(&mut attempt, names, auth, crypt).unwrap();
        match f.tpm.execute(&attempt, &[auth_cmd]) {
            // swtpm asks for a retry while it records DA state in NV.
            Err(e) if e.response_code().is_some_and(|rc| rc.is_retryable()) => continue,
            Err(e) => return Err(e),
            Ok(mut response) => {
                session.verify(call, &mut response).unwrap();
                return Ok(response);
            }
        }
    }
}

/// Creates and loads a key under the SRK; returns its handle, name and public area.
fn create_and_load(
    f: &mut Fixture,
    session: &mut HmacSession,
    rsa: bool,
    auth: &[u8],
) -> (u32, Vec<u8>, TpmPublic) {
    let tpl = template(rsa, !auth.is_empty()).marshal();
    let srk_name = f.srk_name.clone();
    // The new key's auth value is the first parameter: encrypted on the bus.
    let created = run_hmac(
        f,
        session,
        ops::create(SRK_HANDLE, auth, &tpl),
        &[&srk_name],
        &[],
        Crypt::Command,
    )
    .unwrap();
    let created = ops::parse_create(&created).unwrap();
    let loaded = f
        .tpm
        .execute(
            &ops::load(SRK_HANDLE, &created.private, &created.public),
            &[AuthCommand::password(&[])],
        )
        .unwrap();
    let key = ops::returned_handle(&loaded).unwrap();
    let public = TpmPublic::from_tpm2b(&created.public).unwrap();
    (key, public.name().unwrap(), public)
}

#[test]
fn signs_with_a_password_and_with_a_salted_hmac_session() {
    let mut f = fixture();
    let mut session = start_session(&mut f, true);
    let (key, name, public) = create_and_load(&mut f, &mut session, false, b"1234");
    let digest = [0x42u8; 32];

    let signed = run_hmac(
        &mut f,
        &mut session,
        ops::sign(key, &digest, SignScheme::Ecdsa, TPM_ALG_SHA256),
        &[&name],
        b"1234",
        Crypt::Nothing,
    )
    .unwrap();
    let Signature::Ecdsa { r, s } = ops::parse_sign(&signed).unwrap() else {
        panic!("not ECDSA")
    };
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let pem = public.to_spki_pem().unwrap();
    let vk: p256::ecdsa::VerifyingKey =
        p256::pkcs8::DecodePublicKey::from_public_key_pem(&pem).unwrap();
    let sig = p256::ecdsa::Signature::from_scalars(
        *p256::FieldBytes::from_slice(&r),
        *p256::FieldBytes::from_slice(&s),
    )
    .unwrap();
    vk.verify_prehash(&digest, &sig).unwrap();

    // The session continues: a second signature with the stepped nonces.
    run_hmac(
        &mut f,
        &mut session,
        ops::sign(key, &digest, SignScheme::Ecdsa, TPM_ALG_SHA256),
        &[&name],
        b"1234",
        Crypt::Nothing,
    )
    .unwrap();

    // A wrong auth value is the TPM's AUTH_FAIL, not a broken session.
    let mut cmd = ops::sign(key, &digest, SignScheme::Ecdsa, TPM_ALG_SHA256);
    let (auth, _call) = session
        .authorize(&mut cmd, &[&name], b"4321", Crypt::Nothing)
        .unwrap();
    let err = f.tpm.execute(&cmd, &[auth]).unwrap_err();
    assert!(
        err.response_code().is_some_and(|rc| rc.is_auth_failure()),
        "{err}"
    );
}

#[test]
fn decrypts_with_both_parameters_encrypted() {
    let mut f = fixture();
    let mut session = start_session(&mut f, true);
    let (key, name, public) = create_and_load(&mut f, &mut session, true, b"pin");
    let KeyParams::Rsa { modulus, .. } = &public.key else {
        panic!()
    };
    let rsa_pub = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(modulus),
        rsa::BigUint::from(65537u32),
    )
    .unwrap();
    let secret = b"the plaintext must never cross the bus in clear";
    let ciphertext = rsa_pub
        .encrypt(
            &mut rand::rngs::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            secret,
        )
        .unwrap();
    let response = run_hmac(
        &mut f,
        &mut session,
        ops::rsa_decrypt(
            key,
            &ciphertext,
            DecryptScheme::Oaep {
                hash_alg: TPM_ALG_SHA256,
            },
            &[],
        ),
        &[&name],
        b"pin",
        Crypt::Both,
    )
    .unwrap();
    assert_eq!(ops::parse_rsa_decrypt(&response).unwrap(), secret);
}

#[test]
fn an_unsalted_session_works_too() {
    let mut f = fixture();
    let mut session = start_session(&mut f, false);
    let (key, name, _) = create_and_load(&mut f, &mut session, true, b"x");
    run_hmac(
        &mut f,
        &mut session,
        ops::sign(key, &[1u8; 32], SignScheme::RsaSsa, TPM_ALG_SHA256),
        &[&name],
        b"x",
        Crypt::Nothing,
    )
    .unwrap();
}

#[test]
fn contexts_save_load_and_flush_and_are_counted() {
    let mut f = fixture();
    let mut session = start_session(&mut f, true);
    let (key, _, _) = create_and_load(&mut f, &mut session, false, b"");
    let saved = f.tpm.execute(&ops::context_save(key), &[]).unwrap();
    let context = ops::parse_context_save(&saved).unwrap();
    f.tpm.execute(&ops::flush_context(key), &[]).unwrap();
    let handles = |f: &mut Fixture| {
        let r = f
            .tpm
            .execute(
                &ops::get_capability(ops::CAP_HANDLES, handle::TRANSIENT_FIRST, 16),
                &[],
            )
            .unwrap();
        match ops::parse_capability(&r).unwrap().1 {
            CapabilityData::Handles(list) => list,
            other => panic!("{other:?}"),
        }
    };
    assert!(handles(&mut f).is_empty());
    let loaded = f.tpm.execute(&ops::context_load(&context), &[]).unwrap();
    let again = ops::returned_handle(&loaded).unwrap();
    assert_eq!(handles(&mut f), vec![again]);
    let before = f.counter.get(tpmd_tpm2::wire::cc::SIGN);
    f.tpm
        .execute(
            &ops::sign(again, &[3u8; 32], SignScheme::Ecdsa, TPM_ALG_SHA256),
            &[AuthCommand::password(&[])],
        )
        .unwrap();
    assert_eq!(f.counter.get(tpmd_tpm2::wire::cc::SIGN), before + 1);
    assert_eq!(f.counter.get(tpmd_tpm2::wire::cc::CONTEXT_LOAD), 1);
}

#[test]
fn reads_properties() {
    let mut f = fixture();
    let r = f
        .tpm
        .execute(
            &ops::get_capability(ops::CAP_TPM_PROPERTIES, ops::pt::LOCKOUT_COUNTER, 4),
            &[],
        )
        .unwrap();
    let CapabilityData::Properties(list) = ops::parse_capability(&r).unwrap().1 else {
        panic!()
    };
    let tags: Vec<u32> = list.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        tags,
        vec![
            ops::pt::LOCKOUT_COUNTER,
            ops::pt::MAX_AUTH_FAIL,
            ops::pt::LOCKOUT_INTERVAL,
            ops::pt::LOCKOUT_RECOVERY
        ]
    );
}

#[test]
fn decrypts_pkcs1_for_a_key_without_auth_under_a_session() {
    let mut f = fixture();
    let mut session = start_session(&mut f, true);
    let (key, name, public) = create_and_load(&mut f, &mut session, true, b"");
    let KeyParams::Rsa { modulus, .. } = &public.key else {
        panic!()
    };
    let rsa_pub = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(modulus),
        rsa::BigUint::from(65537u32),
    )
    .unwrap();
    let secret = b"session key material";
    let ciphertext = rsa_pub
        .encrypt(&mut rand::rngs::OsRng, rsa::Pkcs1v15Encrypt, secret)
        .unwrap();
    let response = run_hmac(
        &mut f,
        &mut session,
        ops::rsa_decrypt(key, &ciphertext, DecryptScheme::Pkcs1, &[]),
        &[&name],
        b"",
        Crypt::Both,
    )
    .unwrap();
    assert_eq!(ops::parse_rsa_decrypt(&response).unwrap(), secret);
}

#[test]
fn changes_an_auth_value_and_tests_parameters() {
    let mut f = fixture();
    let mut session = start_session(&mut f, true);
    let tpl = template(false, true).marshal();
    let srk_name = f.srk_name.clone();
    let created = run_hmac(
        &mut f,
        &mut session,
        ops::create(SRK_HANDLE, b"old", &tpl),
        &[&srk_name],
        &[],
        Crypt::Command,
    )
    .unwrap();
    let created = ops::parse_create(&created).unwrap();
    let load = |f: &mut Fixture, private: &[u8]| {
        let r = f
            .tpm
            .execute(
                &ops::load(SRK_HANDLE, private, &created.public),
                &[AuthCommand::password(&[])],
            )
            .unwrap();
        ops::returned_handle(&r).unwrap()
    };
    let key = load(&mut f, &created.private);
    let name = TpmPublic::from_tpm2b(&created.public)
        .unwrap()
        .name()
        .unwrap();
    let changed = run_hmac(
        &mut f,
        &mut session,
        ops::object_change_auth(key, SRK_HANDLE, b"new"),
        &[&name, &srk_name],
        b"old",
        Crypt::Command,
    )
    .unwrap();
    let new_private = ops::parse_object_change_auth(&changed).unwrap();
    f.tpm.execute(&ops::flush_context(key), &[]).unwrap();
    let key = load(&mut f, &new_private);
    run_hmac(
        &mut f,
        &mut session,
        ops::sign(key, &[5u8; 32], SignScheme::Ecdsa, TPM_ALG_SHA256),
        &[&name],
        b"new",
        Crypt::Nothing,
    )
    .unwrap();

    // TestParms: swtpm holds RSA 3072 but not RSA 4096.
    let mut rsa = template(true, false);
    for (bits, supported) in [(3072u16, true), (4096, false)] {
        rsa.key = KeyParams::Rsa {
            bits,
            exponent: 0,
            modulus: vec![],
        };
        let answer = f.tpm.execute(&ops::test_parms(&rsa.marshal_parms()), &[]);
        assert_eq!(answer.is_ok(), supported, "RSA {bits}: {answer:?}");
    }
}
