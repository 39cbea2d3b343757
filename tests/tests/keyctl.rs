//! tpm-keyctl against tpmd on a fresh simulator: wrap every supported input format,
//! sign, verify with openssl; generate; and the bad-input errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;

use tpmd_tests::tools::{fails_with, ok, openssl_genkey, run, sign_and_verify};
use tpmd_tests::TestEnv;

#[tokio::test]
async fn wraps_pem_keys_and_signs() {
    let env = TestEnv::start().await;
    let cases: [(&str, &str, &[&str]); 3] = [
        ("rsa.pem", "RSA", &["rsa_keygen_bits:2048"]),
        ("p256.pem", "EC", &["ec_paramgen_curve:P-256"]),
        ("p384.pem", "EC", &["ec_paramgen_curve:P-384"]),
    ];
    for (name, alg, opts) in cases {
        openssl_genkey(&env.path(name), alg, opts);
        let original = fs::read(env.path(name)).unwrap();
        let out = env.keyctl(&["wrap", name]);
        ok(&out);
        let wrapped = env.path(&format!("{name}.tpm"));
        let text = fs::read_to_string(&wrapped).unwrap();
        assert!(
            text.starts_with("-----BEGIN TSS2 PRIVATE KEY-----"),
            "{text}"
        );
        assert_eq!(
            fs::metadata(&wrapped).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read(env.path(name)).unwrap(),
            original,
            "the original was touched"
        );
        assert!(env.path(&format!("{name}.pub")).exists(), "no .pub written");
        // The public key in the wrapped file is the original's.
        let ours = ok(&env.keyctl(&["pubkey", &format!("{name}.tpm")]));
        let theirs = ok(&std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(env.path(name))
            .output()
            .unwrap());
        assert_eq!(ours.trim(), theirs.trim(), "{name}");
        let key = format!("{name}.tpm");
        sign_and_verify(&env, &key, &format!("{name}.pub.pem"), "sha256", &[], &[]);
    }
    // RSA: every hash, and PSS.
    for digest in ["sha1", "sha384", "sha512"] {
        sign_and_verify(&env, "rsa.pem.tpm", "rsa.pub.pem", digest, &[], &[]);
    }
    sign_and_verify(
        &env,
        "rsa.pem.tpm",
        "rsa.pub.pem",
        "sha256",
        &["--scheme", "pss"],
        &[
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:-1",
        ],
    );
    sign_and_verify(&env, "p384.pem.tpm", "p384.pub.pem", "sha384", &[], &[]);
}

#[tokio::test]
async fn wraps_pkcs1_sec1_encrypted_pkcs8_and_openssh() {
    let env = TestEnv::start().await;
    let pass = env.path("pass");
    fs::write(&pass, "secret words\n").unwrap();
    // PKCS#1
    openssl_genkey(&env.path("k.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    run(
        "openssl",
        &[
            "rsa",
            "-traditional",
            "-in",
            &env.path("k.pem").to_string_lossy(),
            "-out",
            &env.path("pkcs1.pem").to_string_lossy(),
        ],
    );
    assert!(fs::read_to_string(env.path("pkcs1.pem"))
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    ok(&env.keyctl(&["wrap", "pkcs1.pem"]));
    // SEC1
    run(
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &env.path("sec1.pem").to_string_lossy(),
        ],
    );
    assert!(fs::read_to_string(env.path("sec1.pem"))
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    ok(&env.keyctl(&["wrap", "sec1.pem"]));
    // Encrypted PKCS#8
    run(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-in",
            &env.path("k.pem").to_string_lossy(),
            "-out",
            &env.path("enc.pem").to_string_lossy(),
            "-passout",
            "pass:secret words",
        ],
    );
    ok(&env.keyctl(&["wrap", "enc.pem", "--passphrase-file", "pass"]));
    // OpenSSH, passphrase-protected, RSA and ECDSA
    for (name, t) in [("id_rsa", "rsa"), ("id_ecdsa", "ecdsa")] {
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                t,
                "-N",
                "secret words",
                "-C",
                "me@example",
                "-f",
                &env.path(name).to_string_lossy(),
            ],
        );
        fs::remove_file(env.path(&format!("{name}.pub"))).unwrap();
        ok(&env.keyctl(&["wrap", name, "--passphrase-file", "pass"]));
        let pub_line = fs::read_to_string(env.path(&format!("{name}.pub"))).unwrap();
        assert!(pub_line.trim_end().ends_with("me@example"), "{pub_line}");
        // ssh-keygen derives the same public key from the original.
        let expected = ok(&std::process::Command::new("ssh-keygen")
            .args(["-y", "-P", "secret words", "-f"])
            .arg(env.path(name))
            .output()
            .unwrap());
        let ours = ok(&env.keyctl(&["pubkey", "--ssh", &format!("{name}.tpm")]));
        let fields = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(fields(&ours), fields(&expected));
        sign_and_verify(
            &env,
            &format!("{name}.tpm"),
            &format!("{name}.pub.pem"),
            "sha256",
            &[],
            &[],
        );
    }
}

#[tokio::test]
async fn generates_keys_in_the_tpm() {
    let env = TestEnv::start().await;
    for t in ["rsa2048", "ecc-p256", "ecc-p384"] {
        let out = format!("{t}.tpm");
        ok(&env.keyctl(&["generate", "-t", t, "-o", &out]));
        assert!(env.path(&format!("{out}.pub")).exists());
        sign_and_verify(&env, &out, &format!("{t}.pub.pem"), "sha256", &[], &[]);
    }
    // Refuses to overwrite.
    fails_with(
        &env.keyctl(&["generate", "-t", "rsa2048", "-o", "rsa2048.tpm"]),
        "already exists",
    );
}

#[tokio::test]
async fn bad_input_gets_one_clear_line_and_writes_nothing() {
    let env = TestEnv::start().await;
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &env.path("id_ed25519").to_string_lossy(),
        ],
    );
    fails_with(&env.keyctl(&["wrap", "id_ed25519"]), "Ed25519");
    assert!(!env.path("id_ed25519.tpm").exists());

    fs::write(
        env.path("garbage.pem"),
        "-----BEGIN PRIVATE KEY-----\nnot base64!!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    fails_with(&env.keyctl(&["wrap", "garbage.pem"]), "garbage.pem");
    assert!(!env.path("garbage.pem.tpm").exists());

    openssl_genkey(&env.path("k.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    let text = fs::read_to_string(env.path("k.pem")).unwrap();
    fs::write(env.path("truncated.pem"), &text[..text.len() / 2]).unwrap();
    fails_with(&env.keyctl(&["wrap", "truncated.pem"]), "truncated.pem");

    run(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-in",
            &env.path("k.pem").to_string_lossy(),
            "-out",
            &env.path("enc.pem").to_string_lossy(),
            "-passout",
            "pass:right",
        ],
    );
    fs::write(env.path("wrong"), "wrong\n").unwrap();
    fails_with(
        &env.keyctl(&["wrap", "enc.pem", "--passphrase-file", "wrong"]),
        "passphrase",
    );
    assert!(!env.path("enc.pem.tpm").exists());

    fails_with(&env.keyctl(&["wrap", "missing.pem"]), "no such file");

    // A corrupt key file given to sign.
    fs::write(
        env.path("bad.tpm"),
        "-----BEGIN TSS2 PRIVATE KEY-----\nMAA=\n-----END TSS2 PRIVATE KEY-----\n",
    )
    .unwrap();
    fs::write(env.path("m"), "x").unwrap();
    fails_with(
        &env.keyctl(&["sign", "-k", "bad.tpm", "-i", "m"]),
        "bad.tpm",
    );

    // Output exists: nothing is overwritten without --force.
    ok(&env.keyctl(&["wrap", "k.pem"]));
    let before = fs::read(env.path("k.pem.tpm")).unwrap();
    fails_with(&env.keyctl(&["wrap", "k.pem"]), "already exists");
    assert_eq!(fs::read(env.path("k.pem.tpm")).unwrap(), before);
}

#[tokio::test]
async fn passwd_changes_a_keys_auth_value() {
    // Two wrong values below: with swtpm's default maxTries of 3 they would be all tpmd's
    // dictionary-attack budget allows (one more failure would lock the TPM), and the
    // right value after them would have to wait for the TPM to forget one.
    let sim = tpmd_simulator::Simulator::start_temporary().unwrap();
    sim.set_dictionary_attack_parameters(5, 1000, 1000).unwrap();
    let env = TestEnv::start_on(sim, &[]).await;
    fs::write(env.path("old"), "old-pin").unwrap();
    fs::write(env.path("new"), "new-pin").unwrap();
    fs::write(env.path("m"), "message").unwrap();
    ok(&env.keyctl(&[
        "generate",
        "-t",
        "ecc-p256",
        "--auth-file",
        "old",
        "-o",
        "k.tpm",
    ]));
    let sign = |auth: &str| env.keyctl(&["sign", "-k", "k.tpm", "--auth-file", auth, "-i", "m"]);
    ok(&sign("old"));
    ok(&env.keyctl(&[
        "passwd",
        "k.tpm",
        "--auth-file",
        "old",
        "--new-auth-file",
        "new",
    ]));
    ok(&sign("new"));
    fails_with(&sign("old"), "wrong auth value");
    // A wrong current value changes nothing.
    fails_with(
        &env.keyctl(&[
            "passwd",
            "k.tpm",
            "--auth-file",
            "old",
            "--new-auth-file",
            "old",
        ]),
        "wrong auth value",
    );
    ok(&sign("new"));
    // A key without an auth value cannot get one: the TPM would not count guesses.
    ok(&env.keyctl(&["generate", "-t", "ecc-p256", "-o", "plain.tpm"]));
    fails_with(
        &env.keyctl(&["passwd", "plain.tpm", "--new-auth-file", "new"]),
        "has no auth value",
    );
}

/// swtpm stops at RSA 3072: the error says what the TPM can hold (TPM2_TestParms), not a
/// guess from a response code, and nothing is written.
#[tokio::test]
async fn a_key_size_the_tpm_cannot_hold_is_named() {
    let env = TestEnv::start().await;
    openssl_genkey(&env.path("big.pem"), "RSA", &["rsa_keygen_bits:4096"]);
    fails_with(
        &env.keyctl(&["wrap", "big.pem"]),
        "this TPM cannot hold RSA 4096-bit keys; it supports RSA 1024, RSA 2048, RSA 3072, ECC P-256, ECC P-384",
    );
    assert!(!env.path("big.pem.tpm").exists());
}

#[tokio::test]
async fn a_key_from_another_tpm_is_refused_clearly() {
    let env = TestEnv::start().await;
    let other = TestEnv::start().await;
    openssl_genkey(&other.path("k.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    ok(&other.keyctl(&["wrap", "k.pem"]));
    fs::copy(other.path("k.pem.tpm"), env.path("foreign.tpm")).unwrap();
    fs::write(env.path("m"), "x").unwrap();
    fails_with(
        &env.keyctl(&["sign", "-k", "foreign.tpm", "-i", "m"]),
        "another TPM",
    );
}

#[tokio::test]
async fn tpmd_not_running_says_how_to_start_it() {
    let mut env = TestEnv::start().await;
    env.tpmd.stop();
    fs::write(env.path("m"), "x").unwrap();
    fails_with(&env.keyctl(&["info"]), "tpmd is not running");
    let doctor = env.keyctl(&["doctor"]);
    assert!(!doctor.status.success());
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("FAIL  tpmd: tpmd is not running") && report.contains("fix: "),
        "{report}"
    );
}

#[tokio::test]
async fn offline_wrap_for_another_machine_imports_on_first_use() {
    let env = TestEnv::start().await;
    ok(&env.keyctl(&["srk", "public", "-o", "srk.pub"]));
    openssl_genkey(&env.path("k.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    // Offline: no tpmd needed; point the client at a dead bus to prove it.
    let out = env
        .keyctl_cmd(&["wrap", "--parent-pub", "srk.pub", "k.pem"])
        .env("TPMD_BUS_ADDRESS", "unix:path=/nonexistent")
        .output()
        .unwrap();
    ok(&out);
    sign_and_verify(&env, "k.pem.tpm", "k.pub.pem", "sha256", &[], &[]);
}

#[tokio::test]
async fn info_and_srk_status() {
    let env = TestEnv::start().await;
    let info = ok(&env.keyctl(&["--json", "info"]));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["family"], "2.0");
    assert_eq!(v["srk-present"], true);
    assert!(v["algorithms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "rsa"));
    assert!(!v["manufacturer"].as_str().unwrap().is_empty());
    let status = ok(&env.keyctl(&["srk", "status"]));
    assert!(status.contains("present"), "{status}");
    let created = ok(&env.keyctl(&["--json", "srk", "create"]));
    assert!(created.contains("false"), "{created}");
    // What a TPM 2.0 lacks is said in one line, with the way out.
    fails_with(&env.keyctl(&["lock-nv"]), "no global NV lock");
    // The lockout hierarchy's auth value is empty on a new TPM: root may reset it.
    ok(&env.keyctl(&["reset-lockout"]));
}
