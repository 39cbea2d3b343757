//! Key loss and recovery: a key wrapped with an offline backup survives its TPM. The
//! backup is opened with the backup key's private half on a fresh TPM (a TPM clear, a
//! new machine) and the restored key signs with the same public key and auth value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;

use tpmd_tests::tools::{fails_with, ok, openssl_genkey, run};
use tpmd_tests::TestEnv;

#[tokio::test]
async fn a_backup_restores_the_key_on_a_cleared_tpm() {
    let old = TestEnv::start().await;
    // The backup key, whose private half would live off the machine.
    openssl_genkey(&old.path("backup.key"), "EC", &["ec_paramgen_curve:P-256"]);
    let backup_key = old.path("backup.key");
    let backup_pub = old.path("backup.pub");
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            backup_key.to_str().unwrap(),
            "-pubout",
            "-out",
            backup_pub.to_str().unwrap(),
        ],
    );
    openssl_genkey(&old.path("k.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    fs::write(old.path("pin"), "1234").unwrap();
    fs::write(old.path("m"), "message").unwrap();
    ok(&old.keyctl(&[
        "wrap",
        "--auth-file",
        "pin",
        "--backup-to",
        "backup.pub",
        "k.pem",
    ]));
    assert!(old.path("k.pem.tpm.backup").exists());
    let public_before = ok(&old.keyctl(&["pubkey", "k.pem.tpm"]));
    ok(&old.keyctl(&["sign", "-k", "k.pem.tpm", "--auth-file", "pin", "-i", "m"]));

    // The TPM is gone: a fresh one has another SRK, and the old key file does not load.
    let new = TestEnv::start().await;
    for name in ["k.pem.tpm", "k.pem.tpm.backup", "backup.key", "pin", "m"] {
        fs::copy(old.path(name), new.path(name)).unwrap();
    }
    fails_with(
        &new.keyctl(&["sign", "-k", "k.pem.tpm", "--auth-file", "pin", "-i", "m"]),
        "another TPM",
    );
    // A wrong backup key is one clear line, and writes nothing.
    openssl_genkey(&new.path("other.key"), "EC", &["ec_paramgen_curve:P-256"]);
    fails_with(
        &new.keyctl(&[
            "restore",
            "--backup-key",
            "other.key",
            "k.pem.tpm.backup",
            "-o",
            "r.tpm",
        ]),
        "not made for this backup key",
    );
    assert!(!new.path("r.tpm").exists());
    ok(&new.keyctl(&[
        "restore",
        "--backup-key",
        "backup.key",
        "k.pem.tpm.backup",
        "-o",
        "r.tpm",
    ]));
    assert_eq!(ok(&new.keyctl(&["pubkey", "r.tpm"])), public_before);
    // Same auth value as before.
    ok(&new.keyctl(&["sign", "-k", "r.tpm", "--auth-file", "pin", "-i", "m"]));
    // The backup is not a key for any TPM: tpmd refuses it with the reason.
    fails_with(
        &new.keyctl(&[
            "sign",
            "-k",
            "k.pem.tpm.backup",
            "--auth-file",
            "pin",
            "-i",
            "m",
        ]),
        "tpm-keyctl restore",
    );
}

#[tokio::test]
async fn doctor_names_wrapped_keys_without_a_backup() {
    let env = TestEnv::start().await;
    let home = env.path("home");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    openssl_genkey(&env.path("backup.key"), "EC", &["ec_paramgen_curve:P-256"]);
    let (backup_key, backup_pub) = (env.path("backup.key"), env.path("backup.pub"));
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            backup_key.to_str().unwrap(),
            "-pubout",
            "-out",
            backup_pub.to_str().unwrap(),
        ],
    );
    for name in ["a", "b"] {
        openssl_genkey(&env.path(name), "EC", &["ec_paramgen_curve:P-256"]);
    }
    let wrap = |name: &str, extra: &[&str]| {
        let out = format!("home/.ssh/{name}.tpm");
        let mut args = vec!["wrap", "-o", &out];
        args.extend_from_slice(extra);
        args.push(name);
        ok(&env.keyctl(&args));
    };
    wrap("a", &["--backup-to", "backup.pub"]);
    wrap("b", &[]);
    let out = env
        .keyctl_cmd(&["doctor"])
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("no backup"))
        .unwrap_or_else(|| panic!("no backup finding: {text}"));
    assert!(line.contains("b.tpm") && !line.contains("a.tpm"), "{line}");
}
