//! libtpmd_pkcs11.so's RSA cases on a TPM 1.2 simulator: the module is unchanged; a key
//! wrapped by `tpm-keyctl wrap` (a TSS KEY BLOB) and a key pair generated through
//! C_GenerateKeyPair sign, and the signatures verify against openssl's public key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rsa::pkcs8::DecodePublicKey;
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256};
use tpmd_tests::pkcs11::Token;
use tpmd_tests::tools::ok;
use tpmd_tests::Family;

const MESSAGE: &[u8] = b"signed by a TPM 1.2 through PKCS#11";

fn verify_sha256(spki: &[u8], signature: &[u8]) {
    let key = rsa::RsaPublicKey::from_public_key_der(spki).unwrap();
    key.verify(
        Pkcs1v15Sign::new::<Sha256>(),
        &Sha256::digest(MESSAGE),
        signature,
    )
    .unwrap_or_else(|e| panic!("the TPM 1.2 signature does not verify: {e}"));
}

fn private_key_with_spki(s: &Session, spki: &[u8]) -> ObjectHandle {
    s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
        .into_iter()
        .find(|k| {
            s.get_attributes(*k, &[AttributeType::PublicKeyInfo])
                .unwrap()
                .contains(&Attribute::PublicKeyInfo(spki.to_vec()))
        })
        .expect("no private key object with this public key")
}

#[test]
fn wrapped_and_generated_rsa_keys_sign_on_a_tpm12() {
    let token = Token::start_family(Family::Tpm12);
    let key = token.wrap_key(&token.store(), "work", "rsa", None);
    let text = std::fs::read_to_string(&key.tpm).unwrap();
    assert!(text.starts_with("-----BEGIN TSS KEY BLOB-----"), "{text}");

    let p = token.load();
    let slot = p.get_slots_with_token().unwrap()[0];
    let label = p.get_token_info(slot).unwrap().label().to_string();
    assert!(
        label.contains("1.2"),
        "the token names the TPM family: {label}"
    );
    let s = p.open_rw_session(slot).unwrap();

    let private = private_key_with_spki(&s, &key.spki);
    verify_sha256(
        &key.spki,
        &s.sign(&Mechanism::Sha256RsaPkcs, private, MESSAGE).unwrap(),
    );

    let (public, private) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
            &[
                Attribute::Label(b"made in a 1.2".to_vec()),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let spki = match s
        .get_attributes(public, &[AttributeType::PublicKeyInfo])
        .unwrap()
        .remove(0)
    {
        Attribute::PublicKeyInfo(v) => v,
        other => panic!("{other:?}"),
    };
    verify_sha256(
        &spki,
        &s.sign(&Mechanism::Sha256RsaPkcs, private, MESSAGE).unwrap(),
    );

    // A real client too: pkcs11-tool lists both keys.
    let listed = ok(&token
        .command("pkcs11-tool")
        .args([
            "--module",
            &tpmd_tests::pkcs11::module_path().display().to_string(),
        ])
        .arg("--list-objects")
        .output()
        .unwrap());
    // The generated key's label becomes its file name in the store.
    assert!(
        listed.contains("label:      work") && listed.contains("made_in_a_1.2"),
        "{listed}"
    );
}
