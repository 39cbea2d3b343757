//! Provisioning, the embedded simulator's persistence, key auth through tpm-keyctl,
//! --replace, and start-up failures: each error one clear line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::process::Command;

use tpmd_simulator::{Family, Simulator};
use tpmd_tests::tools::{fails_with, ok, openssl_genkey};
use tpmd_tests::{binary, PrivateBus, TestEnv, TpmdProcess};

#[tokio::test]
async fn a_missing_srk_is_explained_and_srk_create_fixes_it() {
    let sim = Simulator::start_in_tempdir(Family::Tpm2, None, false).unwrap();
    let env = TestEnv::start_on(sim, &[]).await;
    let status = ok(&env.keyctl(&["srk", "status"]));
    assert!(status.contains("tpm-keyctl srk create"), "{status}");
    let doctor = env.keyctl(&["doctor"]);
    assert!(!doctor.status.success());
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("FAIL  SRK") && report.contains("fix: sudo tpm-keyctl srk create"),
        "{report}"
    );
    openssl_genkey(&env.path("k.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    fails_with(&env.keyctl(&["wrap", "k.pem"]), "tpm-keyctl srk create");
    assert!(!env.path("k.pem.tpm").exists());

    let created = ok(&env.keyctl(&["srk", "create"]));
    assert!(created.contains("created the SRK"), "{created}");
    ok(&env.keyctl(&["wrap", "k.pem"]));
    fs::write(env.path("m"), "m").unwrap();
    ok(&env.keyctl(&["sign", "-k", "k.pem.tpm", "-i", "m", "-o", "m.sig"]));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&env.keyctl(&["--json", "info"]))).unwrap();
    assert_eq!(info["srk-present"], true);
    let doctor: serde_json::Value =
        serde_json::from_str(&ok(&env.keyctl(&["--json", "doctor"]))).unwrap();
    let findings = doctor.as_array().unwrap();
    let status_of = |check: &str| {
        findings
            .iter()
            .find(|f| f["check"] == check)
            .map(|f| f["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status_of("SRK").as_deref(), Some("ok"), "{doctor}");
    assert_eq!(status_of("lockout").as_deref(), Some("ok"), "{doctor}");
    assert_eq!(
        status_of("resource manager").as_deref(),
        Some("ok"),
        "{doctor}"
    );
}

#[tokio::test]
async fn the_embedded_simulator_keeps_keys_across_restarts() {
    let bus = PrivateBus::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_arg = state.to_string_lossy().into_owned();
    let args = ["--simulator", "--simulator-state", state_arg.as_str()];
    let keyctl = |args: &[&str]| {
        Command::new(binary("tpm-keyctl"))
            .args(args)
            .env("TPMD_BUS_ADDRESS", bus.address())
            .current_dir(dir.path())
            .output()
            .unwrap()
    };

    let mut tpmd = TpmdProcess::start_with_args(&bus, &args, dir.path().join("1.log"))
        .await
        .unwrap();
    openssl_genkey(&dir.path().join("k.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    ok(&keyctl(&["wrap", "k.pem"]));
    let status = tpmd.stop().unwrap();
    assert!(
        status.success(),
        "tpmd did not stop cleanly: {}",
        tpmd.log_text()
    );

    let _tpmd = TpmdProcess::start_with_args(&bus, &args, dir.path().join("2.log"))
        .await
        .unwrap();
    fs::write(dir.path().join("m"), "m").unwrap();
    ok(&keyctl(&[
        "sign",
        "-k",
        "k.pem.tpm",
        "-i",
        "m",
        "-o",
        "m.sig",
    ]));
}

#[tokio::test]
async fn key_auth_through_tpm_keyctl() {
    let env = TestEnv::start().await;
    fs::write(env.path("auth"), "open sesame\n").unwrap();
    fs::write(env.path("bad"), "close sesame\n").unwrap();
    fs::write(env.path("m"), "m").unwrap();
    openssl_genkey(&env.path("k.pem"), "EC", &["ec_paramgen_curve:P-384"]);
    ok(&env.keyctl(&["wrap", "k.pem", "--auth-file", "auth"]));
    ok(&env.keyctl(&[
        "sign",
        "-k",
        "k.pem.tpm",
        "-i",
        "m",
        "-o",
        "m.sig",
        "--auth-file",
        "auth",
    ]));
    fails_with(
        &env.keyctl(&[
            "sign",
            "-k",
            "k.pem.tpm",
            "-i",
            "m",
            "-o",
            "m2.sig",
            "--auth-file",
            "bad",
        ]),
        "wrong auth value",
    );
    assert!(!env.path("m2.sig").exists());
    ok(&env.keyctl(&[
        "generate",
        "-t",
        "rsa2048",
        "-o",
        "g.tpm",
        "--auth-file",
        "auth",
    ]));
    ok(&env.keyctl(&[
        "sign",
        "-k",
        "g.tpm",
        "-i",
        "m",
        "-o",
        "g.sig",
        "--auth-file",
        "auth",
    ]));
}

#[tokio::test]
async fn replace_swaps_the_original_for_the_tpm_key() {
    let env = TestEnv::start().await;
    openssl_genkey(&env.path("id_rsa"), "RSA", &["rsa_keygen_bits:2048"]);
    ok(&env.keyctl(&["wrap", "--replace", "id_rsa"]));
    let text = fs::read_to_string(env.path("id_rsa")).unwrap();
    assert!(
        text.starts_with("-----BEGIN TSS2 PRIVATE KEY-----"),
        "{text}"
    );
    assert!(!env.path("id_rsa.tpm").exists());
    assert!(env.path("id_rsa.pub").exists());
}

#[tokio::test]
async fn tpmd_without_a_tpm_fails_in_one_line() {
    let bus = PrivateBus::start().unwrap();
    let out = Command::new(binary("tpmd"))
        .args(["--address", bus.address(), "--tpm", "/nonexistent/tpm0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr.lines().filter(|l| l.starts_with("tpmd:")).collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(ours[0].contains("/nonexistent/tpm0"), "{stderr}");
}
