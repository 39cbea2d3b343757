//! libtpmd_pkcs11.so with OpenSC's pkcs11-tool and openssl on both TPM families:
//! --verify of openssl's signatures, --generate-random, --test --login with keys that
//! share the token PIN; on a TPM 1.2 the mechanism list, --test --login and PKCS#1 v1.5
//! decryption of keys tpmd wraps and generates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Output, Stdio};

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use tpmd_tests::pkcs11::{module_path, object_with_spki, slot, Token};
use tpmd_tests::tools::{ok, run};
use tpmd_tests::Family;

const MESSAGE: &[u8] = b"checked by pkcs11-tool";

fn pkcs11_tool(token: &Token, args: &[&str]) -> Output {
    token
        .command("pkcs11-tool")
        .env("TPMD_PKCS11_DEBUG", "1")
        .arg("--module")
        .arg(module_path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// openssl signs `data` with the plaintext key into `sig`.
fn openssl_sign(plain: &Path, data: &Path, sig: &Path) {
    run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-sign",
            &plain.display().to_string(),
            "-out",
            &sig.display().to_string(),
            &data.display().to_string(),
        ],
    );
}

#[test]
fn pkcs11_tool_verifies_openssl_signatures_and_draws_random_bytes() {
    let token = Token::start();
    let data = token.env.path("data");
    std::fs::write(&data, MESSAGE).unwrap();
    let (rsa_sig, ec_sig) = (token.env.path("rsa.sig"), token.env.path("ec.sig"));
    let (d, r, e) = (data.clone(), rsa_sig.clone(), ec_sig.clone());
    token.wrap_key_with(&token.store(), "rsa", "rsa", None, move |plain| {
        openssl_sign(plain, &d, &r)
    });
    let d = data.clone();
    token.wrap_key_with(&token.store(), "ec", "p256", None, move |plain| {
        openssl_sign(plain, &d, &e)
    });
    // Known CKA_IDs for pkcs11-tool's --id.
    std::fs::write(token.store().join("rsa.id"), "01").unwrap();
    std::fs::write(token.store().join("ec.id"), "02").unwrap();
    let tampered = token.env.path("tampered");
    std::fs::write(&tampered, b"checked by pkcs11-tooL").unwrap();
    // openssl writes ECDSA signatures as DER sequences.
    for (id, mech, sig, format) in [
        ("01", "SHA256-RSA-PKCS", &rsa_sig, &[][..]),
        (
            "02",
            "ECDSA-SHA256",
            &ec_sig,
            &["--signature-format", "openssl"][..],
        ),
    ] {
        let verify = |input: &Path| {
            let (input, sig) = (input.display().to_string(), sig.display().to_string());
            let mut args = vec!["--verify", "--id", id, "-m", mech];
            args.extend(format);
            args.extend(["--input-file", &input, "--signature-file", &sig]);
            pkcs11_tool(&token, &args)
        };
        let good = verify(&data);
        assert!(good.status.success(), "{mech}: {}", text(&good));
        assert!(
            text(&good).contains("Signature is valid"),
            "{}",
            text(&good)
        );
        // pkcs11-tool 0.23 reports a bad signature but exits with 0.
        let bad = text(&verify(&tampered));
        assert!(bad.contains("Invalid signature"), "{mech}: {bad}");
        assert!(!bad.contains("Signature is valid"), "{mech}: {bad}");
    }

    let mut draws = Vec::new();
    for n in ["100", "5000"] {
        let out_file = token.env.path(&format!("random-{n}"));
        let out = pkcs11_tool(
            &token,
            &[
                "--generate-random",
                n,
                "--output-file",
                &out_file.display().to_string(),
            ],
        );
        ok(&out);
        let bytes = std::fs::read(&out_file).unwrap();
        assert_eq!(bytes.len().to_string(), n);
        draws.push(bytes);
    }
    assert_ne!(draws[0][..], draws[1][..100]);
}

#[test]
fn pkcs11_tool_test_login_passes_with_keys_sharing_the_token_pin() {
    let token = Token::start();
    token.wrap_key(&token.store(), "rsa", "rsa", Some("1234"));
    token.wrap_key(&token.store(), "ec", "p256", Some("1234"));
    token.wrap_key(&token.store(), "rsa-open", "rsa", None);
    let out = pkcs11_tool(&token, &["--test", "--login", "--pin", "1234"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("No errors"), "{all}");
    // Every section ran: random bytes, signatures, their verification and decryption
    // (OAEP with and without a label) with both keys that have a PIN.
    for want in [
        "C_GenerateRandom():\n  seeding (C_SeedRandom) not supported\n  seems to be OK",
        "all 4 signature functions seem to work",
        "Verify (currently only for RSA)",
        "testing key 2 (rsa) with 1 mechanism\n    RSA-PKCS: OK",
        "Label) present, length 3",
    ] {
        assert!(all.contains(want), "{want:?} missing: {all}");
    }
}

/// `pkcs11-tool -M`: the mechanism names the token lists.
fn mechanism_list(token: &Token) -> String {
    let out = pkcs11_tool(token, &["-M"]);
    ok(&out)
}

#[test]
fn a_tpm12_token_offers_what_a_tpm12_computes_and_decrypts_pkcs1() {
    let token = Token::start_family(Family::Tpm12);
    let plain_copy = token.env.path("wrapped-plain.pem");
    let keep = plain_copy.clone();
    let wrapped = token.wrap_key_with(&token.store(), "wrapped", "rsa", Some("1234"), move |p| {
        std::fs::copy(p, &keep).unwrap();
    });
    token.wrap_key(&token.store(), "open", "rsa", None);

    let list = mechanism_list(&token);
    assert!(list.contains("SHA256-RSA-PKCS"), "{list}");
    assert!(list.contains("RSA-PKCS,"), "{list}");
    for absent in ["PSS", "OAEP", "ECDSA", "EC-KEY-PAIR-GEN"] {
        assert!(
            !list.contains(absent),
            "a TPM 1.2 token lists {absent}: {list}"
        );
    }

    let p = token.load();
    let s = p.open_rw_session(slot(&p)).unwrap();
    s.login(UserType::User, Some(&AuthPin::new("1234".into())))
        .unwrap();
    let private = object_with_spki(&s, ObjectClass::PRIVATE_KEY, &wrapped.spki);
    let public = object_with_spki(&s, ObjectClass::PUBLIC_KEY, &wrapped.spki);
    assert_eq!(
        s.get_attributes(private, &[AttributeType::Decrypt])
            .unwrap(),
        vec![Attribute::Decrypt(true)]
    );
    // A standard RSAES-PKCS1-v1_5 ciphertext from openssl, decrypted by UnBind.
    let plain_in = token.env.path("secret");
    let ct_file = token.env.path("secret.enc");
    std::fs::write(&plain_in, b"pre-master secret").unwrap();
    run(
        "openssl",
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &wrapped.public_pem.display().to_string(),
            "-in",
            &plain_in.display().to_string(),
            "-out",
            &ct_file.display().to_string(),
        ],
    );
    let ct = std::fs::read(&ct_file).unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, private, &ct).unwrap(),
        b"pre-master secret"
    );
    // And the module's own encryption, decrypted by the TPM and by openssl.
    let ct = s
        .encrypt(&Mechanism::RsaPkcs, public, b"both ways")
        .unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, private, &ct).unwrap(),
        b"both ways"
    );
    std::fs::write(&ct_file, &ct).unwrap();
    let by_openssl = run(
        "openssl",
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            &plain_copy.display().to_string(),
            "-in",
            &ct_file.display().to_string(),
        ],
    );
    assert_eq!(by_openssl.stdout, b"both ways");

    // A key pair generated in the TPM 1.2 decrypts the same way.
    let (gen_public, gen_private) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
            &[Attribute::Label(b"generated".to_vec())],
        )
        .unwrap();
    let ct = s
        .encrypt(&Mechanism::RsaPkcs, gen_public, b"generated key")
        .unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, gen_private, &ct).unwrap(),
        b"generated key"
    );

    // What a TPM 1.2 cannot compute is not offered, so it is refused up front.
    let pss = Mechanism::RsaPkcsPss(PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    });
    assert!(matches!(
        s.sign(&pss, private, &[0; 32]),
        Err(Error::Pkcs11(RvError::MechanismInvalid, _))
    ));
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ));
    assert!(matches!(
        s.decrypt(&oaep, private, &ct),
        Err(Error::Pkcs11(RvError::MechanismInvalid, _))
    ));
    drop(s);
    p.finalize();

    let out = pkcs11_tool(&token, &["--test", "--login", "--pin", "1234"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("No errors"), "{all}");
    assert!(all.contains("RSA-PKCS: OK"), "{all}");
}
