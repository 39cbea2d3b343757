//! The TPM 1.2 client against a real swtpm in TPM 1.2 mode (owner and SRK well-known,
//! as `swtpm_setup --take-ownership --owner-well-known --srk-well-known` leaves it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy;

use rand::rngs::OsRng;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256, Sha512};
use tpmd_simulator::{Family, Simulator};
use tpmd_tpm12::client::{ClientError, Tpm12, Transport};
use tpmd_tpm12::codec::consts::key_usage;
use tpmd_tpm12::codec::{AuthSecret, Key12, PcrInfo, PcrSelection};
use tpmd_tpm12::keys::digest_info::{digest_info, Hash};
use tpmd_tpm12::keys::public::to_rsa;
use tpmd_tpm12::keys::wrap::{generate_template, wrap_rsa_key, wrap_rsa_key_bound, Usage};
use tpmd_tpm12::keys::{bind, file};

fn start() -> (Simulator, Tpm12) {
    let sim = Simulator::start_in_tempdir(Family::Tpm12, None, true).unwrap();
    let tpm = Tpm12::connect(Transport::swtpm_tcp(sim.port())).unwrap();
    (sim, tpm)
}

fn sign_and_verify(tpm: &mut Tpm12, handle: u32, auth: &AuthSecret, key: &Key12) {
    let public = to_rsa(&key.pubkey()).unwrap();
    let msg = b"tpmd signs this";
    let digest = Sha256::digest(msg);
    let info = digest_info(Hash::Sha256, &digest).unwrap();
    let sig = tpm.sign(handle, Some(auth), &info).unwrap();
    public
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .unwrap();
    let digest = Sha512::digest(msg);
    let info = digest_info(Hash::Sha512, &digest).unwrap();
    let sig = tpm.sign(handle, Some(auth), &info).unwrap();
    public
        .verify(Pkcs1v15Sign::new::<Sha512>(), &digest, &sig)
        .unwrap();
}

#[test]
fn version_slots_and_flags() {
    let (_sim, mut tpm) = start();
    let v = tpm.version_info().unwrap();
    assert_eq!(&v.version[..2], &[1, 2], "{}", v.describe());
    assert!(!v.vendor().is_empty());
    assert!(tpm.max_key_slots().unwrap() >= 2);
    assert!(tpm.free_key_slots().unwrap() >= 2);
    assert!(tpm.has_owner().unwrap());
    let flags = tpm.permanent_flags().unwrap();
    assert!(flags.ownership && !flags.disable && !flags.deactivated);
    let nv = tpm.nv_state().unwrap();
    assert_eq!(nv.locked, flags.nv_locked);
    let da = tpm.da_info().unwrap();
    assert!(!da.active);
    let before = tpm.pcr_read(16).unwrap();
    let after = tpm.extend(16, &[0xAB; 20]).unwrap();
    assert_ne!(before, after);
    assert_eq!(tpm.pcr_read(16).unwrap(), after);
}

#[test]
fn create_wrap_key_loads_and_signs_with_one_session() {
    let (_sim, mut tpm) = start();
    let auth = AuthSecret::from_password(b"key password");
    let key = tpm
        .create_wrap_key(&generate_template(2048, Usage::Legacy, false, true), &auth)
        .unwrap();
    assert_eq!(key.key_usage, key_usage::LEGACY);
    assert_eq!(key.modulus.len(), 256);
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    assert!(tpm.srk_well_known().is_some());
    sign_and_verify(&mut tpm, handle, &auth, &key);
    let public = tpm.get_pub_key(handle, Some(&auth)).unwrap();
    assert_eq!(public.modulus, key.modulus);
    // LoadKey2, four signs and GetPubKey shared one OIAP session.
    assert_eq!(tpm.stats().oiap_opened, 1, "{:?}", tpm.stats());
    assert!(tpm.loaded_keys().unwrap().contains(&handle));
    tpm.flush_key(handle).unwrap();
    assert!(!tpm.loaded_keys().unwrap().contains(&handle));
}

#[test]
fn software_wrapped_key_loads_signs_and_unbinds() {
    let (_sim, mut tpm) = start();
    // Knowing it talks to libtpms, the client guesses swtpm_setup's convention first:
    // no wrong SRK or owner secret is sent (each would count towards DA lockout).
    tpm.version_info().unwrap();
    let srk = tpm.srk_public().unwrap();
    assert_eq!(tpm.stats().secret_retries, 0, "{:?}", tpm.stats());
    assert_eq!(srk.modulus.len(), 256);
    let soft = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let auth = AuthSecret::from_password(b"wrapped");
    let key = wrap_rsa_key(&mut OsRng, &soft, &srk, Some(&auth), Usage::Legacy).unwrap();
    // Through the TSS KEY BLOB PEM and back.
    let pem = file::write_pem(&key.to_bytes()).unwrap();
    let blob = file::read(pem.as_bytes()).unwrap().blob;
    let handle = tpm.load_key(&blob).unwrap();
    assert_eq!(tpm.stats().secret_retries, 0, "{:?}", tpm.stats());
    assert_eq!(
        tpm.srk_well_known(),
        Some(tpmd_tpm12::codec::WellKnown::Sha1OfZeros)
    );
    sign_and_verify(&mut tpm, handle, &auth, &key);
    // The TPM's signature verifies with the software key's public half.
    let digest = Sha256::digest(b"x");
    let sig = tpm
        .sign(
            handle,
            Some(&auth),
            &digest_info(Hash::Sha256, &digest).unwrap(),
        )
        .unwrap();
    soft.to_public_key()
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .unwrap();
    let secret = b"a session key of 32 bytes.......";
    let bound = bind::bind(&mut OsRng, &soft.to_public_key(), secret).unwrap();
    assert_eq!(tpm.unbind(handle, Some(&auth), &bound).unwrap(), secret);
}

#[test]
fn owner_reads_the_srk_public_key() {
    let (_sim, mut tpm) = start();
    let srk = tpm
        .owner_read_internal_pub(tpmd_tpm12::codec::consts::kh::SRK)
        .unwrap();
    assert_eq!(srk.modulus.len(), 256);
    tpm.allow_srk_read(true).unwrap();
    assert!(tpm.permanent_flags().unwrap().read_srk_pub);
    assert_eq!(tpm.srk_public().unwrap(), srk);
}

#[test]
fn wrong_key_auth_is_a_clear_error_and_the_client_recovers() {
    let (_sim, mut tpm) = start();
    let auth = AuthSecret::from_password(b"right");
    let key = tpm
        .create_wrap_key(&generate_template(1024, Usage::Signing, false, true), &auth)
        .unwrap();
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    let info = digest_info(Hash::Sha256, &[1; 32]).unwrap();
    let err = tpm
        .sign(handle, Some(&AuthSecret::from_password(b"wrong")), &info)
        .unwrap_err();
    assert!(err.is_auth_failure(), "{err}");
    assert!(err.to_string().contains("TPM_AUTHFAIL"), "{err}");
    // The failed command ended the session; the next one opens a new one and works.
    tpm.sign(handle, Some(&auth), &info).unwrap();
    assert_eq!(tpm.stats().oiap_opened, 2);
}

#[test]
fn tampered_and_truncated_responses_are_clear_errors() {
    let sim = Simulator::start_in_tempdir(Family::Tpm12, None, true).unwrap();
    let proxy = proxy::Proxy::start(sim.port());
    let mut tpm = Tpm12::connect(Transport::swtpm_tcp(proxy.port())).unwrap();
    let auth = AuthSecret::from_password(b"k");
    let key = tpm
        .create_wrap_key(&generate_template(1024, Usage::Signing, false, true), &auth)
        .unwrap();
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    let info = digest_info(Hash::Sha256, &[2; 32]).unwrap();

    // A flipped bit in the signature: the response HMAC no longer verifies.
    proxy.set(proxy::Mode::FlipByte(20));
    let err = tpm.sign(handle, Some(&auth), &info).unwrap_err();
    assert!(matches!(err, ClientError::BadResponseHmac), "{err}");
    assert!(err.to_string().contains("HMAC"), "{err}");

    // A wrong nonceEven (the last auth block's first byte).
    proxy.set(proxy::Mode::FlipFromEnd(41));
    let err = tpm.sign(handle, Some(&auth), &info).unwrap_err();
    assert!(matches!(err, ClientError::BadResponseHmac), "{err}");

    // Truncated responses, size field adjusted so the transport accepts them.
    for keep in [10, 12, 14, 50] {
        proxy.set(proxy::Mode::Truncate(keep));
        let err = tpm.sign(handle, Some(&auth), &info).unwrap_err();
        assert!(matches!(err, ClientError::Codec(_)), "{keep}: {err}");
        assert!(err.to_string().contains("malformed"), "{err}");
    }

    proxy.set(proxy::Mode::Pass);
    tpm.sign(handle, Some(&auth), &info).unwrap();
}

#[test]
fn take_ownership_with_well_known_srk_on_an_unowned_tpm() {
    // Without provisioning the harness leaves the TPM unowned, as shipped.
    let sim = Simulator::start_in_tempdir(Family::Tpm12, None, false).unwrap();
    let mut tpm = Tpm12::connect(Transport::swtpm_tcp(sim.port())).unwrap();
    assert!(!tpm.has_owner().unwrap());
    let well_known = tpmd_tpm12::codec::WellKnown::Zeros.secret();
    let srk = tpm.take_ownership(&well_known, &well_known).unwrap();
    assert!(tpm.has_owner().unwrap());
    assert!(tpm.permanent_flags().unwrap().read_srk_pub);
    // A fresh client with default (well-known) secrets reads the SRK and uses it.
    drop(tpm);
    let mut tpm = Tpm12::connect(Transport::swtpm_tcp(sim.port())).unwrap();
    // libtpms makes the client guess swtpm_setup's convention first: one wrong guess for
    // the SRK, none for the owner (the SRK's convention is tried first for it).
    tpm.version_info().unwrap();
    assert_eq!(tpm.srk_public().unwrap(), srk);
    assert!(tpm.stats().secret_retries <= 1, "{:?}", tpm.stats());
    let auth = AuthSecret::from_password(b"k");
    let key = tpm
        .create_wrap_key(&generate_template(1024, Usage::Legacy, false, true), &auth)
        .unwrap();
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    sign_and_verify(&mut tpm, handle, &auth, &key);
    assert_eq!(
        tpm.srk_well_known(),
        Some(tpmd_tpm12::codec::WellKnown::Zeros)
    );
    // Ownership cannot be taken twice.
    let err = tpm.take_ownership(&well_known, &well_known).unwrap_err();
    assert!(err.to_string().contains("TPM_OWNER_SET"), "{err}");
}

#[test]
fn tpm_reset_is_detected_and_keys_reload() {
    let (sim, mut tpm) = start();
    let auth = AuthSecret::from_password(b"k");
    let key = tpm
        .create_wrap_key(&generate_template(1024, Usage::Signing, false, true), &auth)
        .unwrap();
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    let info = digest_info(Hash::Sha256, &[3; 32]).unwrap();
    tpm.sign(handle, Some(&auth), &info).unwrap();
    let epoch = tpm.epoch();

    // TPM_Init only: the client sends Startup itself, notices its session is gone, and
    // reports the old key handle as stale.
    sim.init_only().unwrap();
    let err = tpm.sign(handle, Some(&auth), &info).unwrap_err();
    assert!(err.is_stale_handle(), "{err}");
    assert!(tpm.epoch() > epoch);
    assert_eq!(tpm.stats().startups, 1);
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    tpm.sign(handle, Some(&auth), &info).unwrap();

    // A full reset by another client while we are disconnected.
    tpm.disconnect();
    sim.reset().unwrap();
    let epoch = tpm.epoch();
    let err = tpm.sign(handle, Some(&auth), &info).unwrap_err();
    assert!(err.is_stale_handle(), "{err}");
    assert!(tpm.epoch() > epoch);
}

#[test]
fn keys_without_a_password_need_no_session() {
    let (_sim, mut tpm) = start();
    let srk = tpm.srk_public().unwrap();
    let soft = RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
    let wrapped = wrap_rsa_key(&mut OsRng, &soft, &srk, None, Usage::Legacy).unwrap();
    let generated = tpm
        .create_wrap_key(
            &generate_template(1024, Usage::Legacy, false, false),
            &tpmd_tpm12::codec::WellKnown::Zeros.secret(),
        )
        .unwrap();
    for key in [wrapped, generated] {
        assert_eq!(key.auth_data_usage, 0);
        let handle = tpm.load_key(&key.to_bytes()).unwrap();
        let digest = Sha256::digest(b"no password");
        let sig = tpm
            .sign(handle, None, &digest_info(Hash::Sha256, &digest).unwrap())
            .unwrap();
        to_rsa(&key.pubkey())
            .unwrap()
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
            .unwrap();
        let bound = bind::bind(&mut OsRng, &to_rsa(&key.pubkey()).unwrap(), b"k").unwrap();
        assert_eq!(tpm.unbind(handle, None, &bound).unwrap(), b"k");
    }
}

#[test]
fn repeated_wrong_auth_reaches_lockout_with_a_clear_error() {
    let (_sim, mut tpm) = start();
    let auth = AuthSecret::from_password(b"right");
    let key = tpm
        .create_wrap_key(&generate_template(1024, Usage::Signing, false, true), &auth)
        .unwrap();
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    let info = digest_info(Hash::Sha256, &[1; 32]).unwrap();
    let wrong = AuthSecret::from_password(b"wrong");
    let mut last = None;
    for _ in 0..64 {
        let err = tpm.sign(handle, Some(&wrong), &info).unwrap_err();
        let done = err.rc().is_some_and(|rc| rc.is_lockout());
        last = Some(err);
        if done {
            break;
        }
    }
    let err = last.unwrap();
    assert!(err.rc().is_some_and(|rc| rc.is_lockout()), "{err}");
    assert!(err.to_string().contains("TPM_DEFEND_LOCK_RUNNING"), "{err}");
    assert!(tpm.da_info().unwrap().active);
    // The owner ends it (`tpm_resetdalock`), and the right password works again.
    tpm.reset_lockout().unwrap();
    assert!(!tpm.da_info().unwrap().active);
    tpm.sign(handle, Some(&auth), &info).unwrap();
}

#[test]
fn a_key_for_another_srk_does_not_load() {
    let (_sim, mut tpm) = start();
    let other = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let other_srk = tpmd_tpm12::codec::PubKey {
        parms: tpmd_tpm12::codec::KeyParms::rsa(
            2048,
            tpmd_tpm12::codec::consts::alg::ES_RSAESOAEP_SHA1_MGF1,
            tpmd_tpm12::codec::consts::alg::SS_NONE,
        ),
        modulus: rsa::traits::PublicKeyParts::n(&other.to_public_key()).to_bytes_be(),
    };
    let soft = RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
    let key = wrap_rsa_key(&mut OsRng, &soft, &other_srk, None, Usage::Legacy).unwrap();
    let err = tpm.load_key(&key.to_bytes()).unwrap_err();
    assert_eq!(
        err.rc(),
        Some(tpmd_tpm12::codec::TpmRc(
            tpmd_tpm12::codec::rc::DECRYPT_ERROR
        )),
        "{err}"
    );
}

#[test]
fn key_contexts_save_and_load_until_a_reset() {
    let (sim, mut tpm) = start();
    let auth = AuthSecret::from_password(b"k");
    let key = tpm
        .create_wrap_key(&generate_template(1024, Usage::Signing, false, true), &auth)
        .unwrap();
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    let context = tpm.save_key_context(handle).unwrap();
    tpm.flush_key(handle).unwrap();
    let handle = tpm.load_key_context(&context).unwrap();
    sign_and_verify(&mut tpm, handle, &auth, &key);
    tpm.flush_key(handle).unwrap();
    // The context of a non-volatile key survives a TPM reset (it gets a new handle).
    tpm.disconnect();
    sim.reset().unwrap();
    let handle = tpm.load_key_context(&context).unwrap();
    sign_and_verify(&mut tpm, handle, &auth, &key);
    // A damaged context is refused with a clear error.
    let mut bad = context.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let err = tpm.load_key_context(&bad).unwrap_err();
    assert!(err.rc().is_some(), "{err}");
}

#[test]
fn a_pkcs1_legacy_key_decrypts_standard_ciphertexts() {
    let (_sim, mut tpm) = start();
    let srk = tpm.srk_public().unwrap();
    let soft = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let key = wrap_rsa_key(&mut OsRng, &soft, &srk, None, Usage::LegacyPkcs1).unwrap();
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    let ciphertext = soft
        .to_public_key()
        .encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"premaster secret")
        .unwrap();
    assert_eq!(
        tpm.unbind(handle, None, &ciphertext).unwrap(),
        b"premaster secret"
    );
    let digest = Sha256::digest(b"pkcs1");
    let sig = tpm
        .sign(handle, None, &digest_info(Hash::Sha256, &digest).unwrap())
        .unwrap();
    soft.to_public_key()
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .unwrap();
}

#[test]
fn failed_commands_do_not_leak_auth_sessions() {
    let (_sim, mut tpm) = start();
    let auth = AuthSecret::from_password(b"k");
    let key = tpm
        .create_wrap_key(&generate_template(1024, Usage::Legacy, false, true), &auth)
        .unwrap();
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    let free = |tpm: &mut Tpm12| {
        tpm.property(tpmd_tpm12::codec::consts::cap::PROP_AUTHSESS)
            .unwrap()
    };
    let before = free(&mut tpm);
    for _ in 0..40 {
        // Garbage to UnBind: the TPM fails the command after checking our auth.
        let err = tpm.unbind(handle, Some(&auth), &[0x5A; 128]).unwrap_err();
        assert!(err.rc().is_some(), "{err}");
    }
    let info = digest_info(Hash::Sha256, &[4; 32]).unwrap();
    tpm.sign(handle, Some(&auth), &info).unwrap();
    assert!(free(&mut tpm) + 1 >= before, "auth sessions leaked");
}

#[test]
fn nv_can_be_locked() {
    let (_sim, mut tpm) = start();
    // swtpm_setup leaves NV unlocked, as many platforms shipped.
    assert!(!tpm.nv_state().unwrap().locked);
    tpm.lock_nv().unwrap();
    assert!(tpm.nv_state().unwrap().locked);
    assert!(tpm.permanent_flags().unwrap().nv_locked);
}

#[test]
fn a_key_bound_to_pcr_16_signs_until_the_pcr_changes() {
    let (_sim, mut tpm) = start();
    let srk = tpm.srk_public().unwrap();
    let release = PcrSelection::new(&[16]).unwrap();
    let now = release
        .composite_hash(&[tpm.pcr_read(16).unwrap()])
        .unwrap();
    let soft = RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
    let auth = AuthSecret::from_password(b"bound");
    let pcr_info = PcrInfo::encode_long(&release, &now);
    let key = wrap_rsa_key_bound(
        &mut OsRng,
        &soft,
        &srk,
        Some(&auth),
        Usage::Legacy,
        pcr_info,
    )
    .unwrap();
    assert_eq!(key.pcr_info().unwrap().unwrap().release.pcrs, vec![16]);
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    sign_and_verify(&mut tpm, handle, &auth, &key);

    tpm.extend(16, &[0x16; 20]).unwrap();
    let digest = Sha256::digest(b"after the extend");
    let info = digest_info(Hash::Sha256, &digest).unwrap();
    match tpm.sign(handle, Some(&auth), &info) {
        Err(ClientError::Tpm(rc)) => assert_eq!(rc.0, tpmd_tpm12::codec::rc::WRONGPCRVAL),
        other => panic!("a sign under other PCR values gave {other:?}"),
    }
}

/// A TPM 1.2 and a key wrapped for its SRK, with no client connected.
fn with_a_wrapped_key() -> (Simulator, Key12) {
    let (sim, mut tpm) = start();
    let auth = AuthSecret::from_password(b"k");
    let key = tpm
        .create_wrap_key(&generate_template(1024, Usage::Legacy, false, true), &auth)
        .unwrap();
    (sim, key)
}

/// A client as tpmd opens one: it knows swtpm's well-known secret.
fn new_client(sim: &Simulator) -> Tpm12 {
    let mut tpm = Tpm12::connect(Transport::swtpm_tcp(sim.port())).unwrap();
    tpm.version_info().unwrap();
    tpm
}

#[test]
fn a_client_that_goes_away_leaves_no_auth_session_in_the_tpm() {
    // A TPM 1.2 keeps an OIAP session until it is flushed, whoever opened it; with a
    // handful of session slots, clients that leave theirs behind (tpmd restarting, say)
    // soon get TPM_RESOURCES.
    let (sim, key) = with_a_wrapped_key();
    for round in 0..40 {
        let mut tpm = new_client(&sim);
        let handle = tpm
            .load_key(&key.to_bytes())
            .unwrap_or_else(|e| panic!("client {round}: {e}"));
        tpm.flush_key(handle).unwrap();
    }
}

#[test]
fn what_a_killed_client_left_loaded_is_flushed() {
    // A client killed without its exit: its key and OIAP session stay in the TPM.
    let (sim, key) = with_a_wrapped_key();
    for _ in 0..3 {
        let mut killed = new_client(&sim);
        killed.load_key(&key.to_bytes()).unwrap();
        std::mem::forget(killed);
    }
    let mut tpm = new_client(&sim);
    assert_eq!(tpm.loaded_keys().unwrap().len(), 3);
    assert_eq!(tpm.flush_left_behind().unwrap(), (3, 3));
    assert!(tpm.loaded_keys().unwrap().is_empty());
    // Its own session, opened for the next load, is not flushed by a second pass.
    let handle = tpm.load_key(&key.to_bytes()).unwrap();
    assert_eq!(tpm.flush_left_behind().unwrap(), (1, 0));
    assert!(tpm.flush_key(handle).is_err());
    tpm.load_key(&key.to_bytes()).unwrap();
}
