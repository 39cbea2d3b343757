//! Keys without an auth value keep signing while the TPM is in dictionary-attack lockout,
//! whichever frontend imported them: `tpm-keyctl wrap`, `ssh-add` through
//! tpmd-ssh-agent, and PKCS#11 `C_CreateObject`. A key with an auth value is refused in
//! lockout (that is the lockout being real), and a key wrapped the old way, without
//! noDA, fails too until `tpm-keyctl doctor` names it and it is re-wrapped.
//!
//! The simulator is put into lockout with tpm2-tools before tpmd starts (maxTries 3,
//! recoveryTime 600 s: it cannot heal during the test), so the test does not depend on
//! what tpmd allows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use p256::ecdsa::signature::Verifier;
use tpmd_simulator::Simulator;
use tpmd_tests::pkcs11::Token;
use tpmd_tests::ssh::{sign_and_verify, AgentProcess};
use tpmd_tests::tools::{ok, openssl_genkey, openssl_verify, run, tpm2_tools, tpm2_tools_ok};
use tpmd_tests::TestEnv;

/// DA parameters maxTries 3, recoveryTime and lockoutRecovery 600 s, then three wrong
/// auth values for a DA-protected key: the TPM is in lockout.
fn drive_into_lockout(sim: &Simulator, dir: &Path) {
    tpm2_tools_ok(sim, dir, "tpm2_dictionarylockout -s -n 3 -t 600 -l 600");
    tpm2_tools_ok(
        sim,
        dir,
        "tpm2_create -C 0x81000001 -G ecc -p right -u pin.pub -r pin.priv",
    );
    std::fs::write(dir.join("msg"), b"wrong guess").unwrap();
    for _ in 0..3 {
        let out = tpm2_tools(
            sim,
            dir,
            "tpm2_load -C 0x81000001 -u pin.pub -r pin.priv -c pin.ctx >/dev/null && tpm2_sign -c pin.ctx -p wrong -g sha256 -o sig msg",
        );
        assert!(!out.status.success(), "a wrong auth value was accepted");
    }
    let state = tpm2_tools_ok(sim, dir, "tpm2_getcap properties-variable");
    assert!(
        state
            .lines()
            .any(|l| l.trim().starts_with("inLockout:") && l.trim().ends_with('1')),
        "the simulator is not in lockout:\n{state}"
    );
}

/// A key file as tpm-keyctl wrote it before noDA: imported with tpm2-tools (default
/// attributes, no noDA) and put in a TSS2 PRIVATE KEY file.
fn key_without_no_da(sim: &Simulator, dir: &Path, private_pem: &Path, out: &Path) {
    tpm2_tools_ok(
        sim,
        dir,
        &format!(
            "tpm2_import -C 0x81000001 -G ecc -i {} -u old.pub -r old.priv",
            private_pem.display()
        ),
    );
    let file = tpmd_api::TpmKeyFile {
        kind: tpmd_api::KeyFileKind::Loadable,
        empty_auth: true,
        parent: tpmd_api::DEFAULT_SRK_HANDLE,
        public: std::fs::read(dir.join("old.pub")).unwrap(),
        private: std::fs::read(dir.join("old.priv")).unwrap(),
        secret: None,
        policy: Vec::new(),
        auth_policies: Vec::new(),
        description: None,
    };
    assert!(!file
        .public_area()
        .unwrap()
        .has_attributes(tpmd_api::marshal::TPMA_OBJECT_NO_DA));
    std::fs::write(out, file.to_pem()).unwrap();
}

fn keyctl_sign(env: &TestEnv, key: &Path) -> Output {
    let key = key.display().to_string();
    env.keyctl(&["sign", "-k", &key, "-i", "message.txt", "-o", "message.sig"])
}

fn doctor(env: &TestEnv, home: &Path) -> String {
    let out = env
        .keyctl_cmd(&["doctor"])
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keys_without_auth_sign_in_lockout_from_every_frontend() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_path_buf();
    let original = dir.join("old.pem");
    openssl_genkey(&original, "EC", &["ec_paramgen_curve:P-256"]);
    let token = Token::start_on(|| {
        let dir = dir.clone();
        let original = original.clone();
        async move {
            let sim = Simulator::start_temporary().unwrap();
            drive_into_lockout(&sim, &dir);
            key_without_no_da(&sim, &dir, &original, &dir.join("old.tpm"));
            TestEnv::start_on(sim, &[]).await
        }
    });
    let env = &token.env;
    std::fs::write(env.path("message.txt"), b"signed in lockout").unwrap();

    // tpm-keyctl wrap without an auth value: signs, and openssl checks the signature.
    let plain = env.path("plain.pem");
    openssl_genkey(&plain, "EC", &["ec_paramgen_curve:P-256"]);
    ok(&env.keyctl(&["wrap", "plain.pem", "-o", "plain.tpm"]));
    ok(&keyctl_sign(env, &env.path("plain.tpm")));
    let public = ok(&env.keyctl(&["pubkey", "plain.tpm"]));
    std::fs::write(env.path("plain.pub.pem"), public).unwrap();
    assert!(openssl_verify(
        &env.path("plain.pub.pem"),
        &env.path("message.txt"),
        &env.path("message.sig"),
        "sha256",
        &[]
    ));

    // The same wrap with an auth value keeps DA protection: the TPM refuses even the
    // right one while in lockout.
    std::fs::write(env.path("pin"), "1234").unwrap();
    ok(&env.keyctl(&["wrap", "plain.pem", "-o", "pin.tpm", "--auth-file", "pin"]));
    let out = env
        .keyctl_cmd(&[
            "sign",
            "-k",
            "pin.tpm",
            "-i",
            "message.txt",
            "-o",
            "pin.sig",
            "--auth-file",
            "pin",
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a DA-protected key signed in lockout: the TPM is not in lockout"
    );

    // A key file from before noDA: fails, doctor names it, re-wrapping fixes it.
    let home = env.path("home");
    let ssh_dir = home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let old = ssh_dir.join("old.tpm");
    std::fs::copy(dir.join("old.tpm"), &old).unwrap();
    std::fs::copy(env.path("plain.tpm"), ssh_dir.join("plain.tpm")).unwrap();
    std::fs::copy(env.path("pin.tpm"), ssh_dir.join("pin.tpm")).unwrap();
    std::fs::write(ssh_dir.join("known_hosts"), "not a key\n").unwrap();
    assert!(!keyctl_sign(env, &old).status.success());
    let report = doctor(env, &home);
    let flagged: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("lacks noDA"))
        .collect();
    assert_eq!(flagged.len(), 1, "{report}");
    assert!(flagged[0].contains(&old.display().to_string()), "{report}");
    assert!(
        report.contains(&format!(
            "re-wrap it from the original private key: `tpm-keyctl wrap -f -o {} ORIGINAL_KEY`",
            old.display()
        )),
        "{report}"
    );
    let old_s = old.display().to_string();
    let original_s = original.display().to_string();
    ok(&env.keyctl(&["wrap", "-f", "-o", &old_s, &original_s]));
    ok(&keyctl_sign(env, &old));
    let report = doctor(env, &home);
    assert!(!report.contains("lacks noDA"), "{report}");
    assert!(
        report.contains("3 TPM key file(s)")
            && report.contains("every one without an auth value has noDA"),
        "{report}"
    );

    // ssh-add of a software key through tpmd-ssh-agent, then ssh-keygen -Y sign with it.
    let agent = AgentProcess::start(env, &[], &[]);
    let ssh_key = env.path("id_ecdsa");
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ecdsa",
            "-N",
            "",
            "-C",
            "added",
            "-f",
            &ssh_key.to_string_lossy(),
        ],
    );
    ok(&agent.ssh_add(&[&ssh_key.to_string_lossy()]));
    let (sign, verify) =
        sign_and_verify(&agent, &env.path("id_ecdsa.pub"), &env.path("message.txt"));
    ok(&sign);
    ok(&verify.unwrap());

    // PKCS#11 C_CreateObject without login (no PIN, so no auth value), then C_Sign.
    let p = token.load();
    let slot = p.get_slots_with_token().unwrap()[0];
    let s = p.open_rw_session(slot).unwrap();
    let secret = p256::SecretKey::random(&mut rand::thread_rng());
    let handle = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Label(b"imported-in-lockout".to_vec()),
            Attribute::EcParams(vec![
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ]),
            Attribute::Value(secret.to_bytes().to_vec()),
        ])
        .unwrap();
    let message = b"signed through PKCS#11 in lockout";
    let signature = s.sign(&Mechanism::EcdsaSha256, handle, message).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&signature).unwrap();
    p256::ecdsa::VerifyingKey::from(secret.public_key())
        .verify(message, &signature)
        .unwrap();
}
