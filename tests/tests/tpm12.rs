//! The core suite's RSA cases on a TPM 1.2 simulator: the same D-Bus API and the same
//! tpm-keyctl commands as on a 2.0, through our own TPM 1.2 stack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;

use tpmd_simulator::Simulator;
use tpmd_tests::tools::{fails_with, ok, openssl_genkey, sign_and_verify};
use tpmd_tests::trousers::Tcsd;
use tpmd_tests::{Family, TestEnv};

#[tokio::test]
async fn info_reports_a_tpm12() {
    let env = TestEnv::start_family(Family::Tpm12).await;
    let info: serde_json::Value =
        serde_json::from_str(&ok(&env.keyctl(&["--json", "info"]))).unwrap();
    assert_eq!(info["family"], "1.2", "{info}");
    assert_eq!(info["srk-present"], true, "{info}");
    let key_types = info["key-types"].as_array().unwrap();
    assert!(key_types.iter().any(|t| t == "rsa2048"), "{info}");
    assert!(
        !key_types
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("ecc")),
        "{info}"
    );
    let doctor: serde_json::Value =
        serde_json::from_str(&ok(&env.keyctl(&["--json", "doctor"]))).unwrap();
    let srk = doctor
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "SRK")
        .unwrap();
    assert_eq!(srk["status"], "ok", "{doctor}");
    // swtpm_setup leaves NV unlocked: doctor warns and names the fix, which works.
    let nv_status = |doctor: &serde_json::Value| {
        doctor
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "NV lock")
            .map(|f| (f["status"].clone(), f["fix"].clone()))
            .unwrap()
    };
    let (status, fix) = nv_status(&doctor);
    assert_eq!(status, "warn", "{doctor}");
    assert_eq!(fix, "sudo tpm-keyctl lock-nv", "{doctor}");
    assert!(ok(&env.keyctl(&["lock-nv"])).contains("NV is locked"));
    assert!(ok(&env.keyctl(&["lock-nv"])).contains("locked already"));
    let doctor: serde_json::Value =
        serde_json::from_str(&ok(&env.keyctl(&["--json", "doctor"]))).unwrap();
    assert_eq!(nv_status(&doctor).0, "ok", "{doctor}");
    ok(&env.keyctl(&["reset-lockout"]));
}

#[tokio::test]
async fn wraps_an_rsa_key_and_signs_with_every_hash() {
    let env = TestEnv::start_family(Family::Tpm12).await;
    openssl_genkey(&env.path("rsa.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    ok(&env.keyctl(&["wrap", "rsa.pem"]));
    let text = fs::read_to_string(env.path("rsa.pem.tpm")).unwrap();
    assert!(
        text.starts_with("-----BEGIN TSS KEY BLOB-----"),
        "a TPM 1.2 key file is a TSS KEY BLOB: {text}"
    );
    for digest in ["sha1", "sha256", "sha512"] {
        sign_and_verify(&env, "rsa.pem.tpm", "rsa.pub.pem", digest, &[], &[]);
    }
}

#[tokio::test]
async fn generates_rsa_and_refuses_ecc_clearly() {
    let env = TestEnv::start_family(Family::Tpm12).await;
    ok(&env.keyctl(&["generate", "-t", "rsa2048", "-o", "gen.tpm"]));
    sign_and_verify(&env, "gen.tpm", "gen.pub.pem", "sha256", &[], &[]);
    fails_with(
        &env.keyctl(&["generate", "-t", "ecc-p256", "-o", "ec.tpm"]),
        "TPM 1.2",
    );
    openssl_genkey(&env.path("ec.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    fails_with(&env.keyctl(&["wrap", "ec.pem"]), "TPM 1.2");
    assert!(!env.path("ec.pem.tpm").exists());
}

#[tokio::test]
async fn a_key_with_an_auth_value_needs_it() {
    let env = TestEnv::start_family(Family::Tpm12).await;
    openssl_genkey(&env.path("rsa.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    fs::write(env.path("auth"), "correct horse").unwrap();
    fs::write(env.path("wrong"), "wrong horse").unwrap();
    ok(&env.keyctl(&["wrap", "--auth-file", "auth", "rsa.pem"]));
    fs::write(env.path("m"), "m").unwrap();
    ok(&env.keyctl(&[
        "sign",
        "-k",
        "rsa.pem.tpm",
        "--auth-file",
        "auth",
        "-i",
        "m",
        "-o",
        "m.sig",
    ]));
    fails_with(
        &env.keyctl(&[
            "sign",
            "-k",
            "rsa.pem.tpm",
            "--auth-file",
            "wrong",
            "-i",
            "m",
            "-o",
            "m.sig",
        ]),
        "wrong auth value",
    );
}

#[tokio::test]
async fn survives_a_tpmd_restart_and_a_tpm_reset() {
    let mut env = TestEnv::start_family(Family::Tpm12).await;
    openssl_genkey(&env.path("rsa.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    ok(&env.keyctl(&["wrap", "rsa.pem"]));
    sign_and_verify(&env, "rsa.pem.tpm", "rsa.pub.pem", "sha256", &[], &[]);
    // TPM_Init only: tpmd holds the simulator's one connection, so it must notice the
    // reset itself, send TPM_Startup and reload the key from its blob.
    env.sim.init_only().unwrap();
    sign_and_verify(&env, "rsa.pem.tpm", "rsa.pub.pem", "sha256", &[], &[]);
    env.restart_tpmd(&[]).await;
    sign_and_verify(&env, "rsa.pem.tpm", "rsa.pub.pem", "sha256", &[], &[]);
}

/// One field of `tpm_version`'s report, e.g. "Chip Version".
fn version_field(report: &str, name: &str) -> String {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .map(|v| {
            v.trim_start_matches(':')
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string()
        })
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[tokio::test]
async fn trousers_agrees_on_the_tpm_and_its_keys_load_in_tpmd() {
    // Unowned, as shipped: trousers takes ownership itself (the `tpm_takeownership -z`
    // flow, SRK secret = 20 zero bytes, the TSS convention).
    let sim = Simulator::start_in_tempdir(Family::Tpm12, None, false).unwrap();
    let tcsd = Tcsd::start(sim.port()).unwrap();
    ok(&tcsd.client("tpm_takeownership", &["-y", "-z"]));
    let version = ok(&tcsd.client("tpm_version", &[]));
    let create_key = tcsd.build_create_key();
    let made = tcsd.client(&create_key, &[]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    tcsd.stop();

    let env = TestEnv::start_on(sim, &[]).await;
    fs::write(env.path("trousers.blob"), &made.stdout).unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&ok(&env.keyctl(&["--json", "info"]))).unwrap();
    assert_eq!(info["family"], "1.2", "{info}");
    assert_eq!(
        info["manufacturer"].as_str().unwrap().trim(),
        version_field(&version, "TPM Vendor ID").trim(),
        "{info}\n{version}"
    );
    // tpm_version's chip version is the family followed by the firmware revision.
    assert_eq!(
        format!("1.2.{}", info["firmware-version"].as_str().unwrap()),
        version_field(&version, "Chip Version"),
        "{info}\n{version}"
    );
    assert_eq!(info["owned"], true, "{info}");
    // The raw TPM_KEY blob trousers wrote loads and signs under the trousers-made SRK.
    sign_and_verify(
        &env,
        "trousers.blob",
        "trousers.pub.pem",
        "sha256",
        &[],
        &[],
    );
}

#[tokio::test]
async fn srk_create_takes_ownership_of_an_unowned_tpm12() {
    let sim = Simulator::start_in_tempdir(Family::Tpm12, None, false).unwrap();
    let env = TestEnv::start_on(sim, &[]).await;
    let doctor = env.keyctl(&["doctor"]);
    assert!(!doctor.status.success());
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("FAIL  SRK: ownership of this TPM 1.2 is not taken")
            && report.contains("fix: sudo tpm-keyctl srk create"),
        "{report}"
    );
    openssl_genkey(&env.path("rsa.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    fails_with(&env.keyctl(&["wrap", "rsa.pem"]), "srk create");
    assert!(!env.path("rsa.pem.tpm").exists());

    let created = ok(&env.keyctl(&["srk", "create"]));
    assert!(created.contains("created"), "{created}");
    let again = ok(&env.keyctl(&["--json", "srk", "create"]));
    assert!(again.contains("false"), "{again}");
    let info: serde_json::Value =
        serde_json::from_str(&ok(&env.keyctl(&["--json", "info"]))).unwrap();
    assert_eq!(info["owned"], true, "{info}");
    ok(&env.keyctl(&["wrap", "rsa.pem"]));
    sign_and_verify(&env, "rsa.pem.tpm", "rsa.pub.pem", "sha256", &[], &[]);
}

#[tokio::test]
async fn an_srk_with_a_password_is_used_with_srk_auth_file() {
    // Owner well-known, SRK password "sekrit", as `swtpm_setup --srkpass` sets it.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let state_s = state.display().to_string();
    ok(&tpmd_tests::tools::run(
        "swtpm_setup",
        &[
            "--tpmstate",
            &state_s,
            "--take-ownership",
            "--owner-well-known",
            "--srkpass",
            "sekrit",
            "--not-overwrite",
        ],
    ));
    let sim = Simulator::start(tpmd_simulator::SimulatorOptions {
        family: Family::Tpm12,
        state_dir: state,
        port: None,
        provision_srk: true,
    })
    .unwrap();
    let srk_auth = dir.path().join("srk-auth");
    fs::write(&srk_auth, "sekrit\n").unwrap();
    let srk_auth_s = srk_auth.display().to_string();
    let mut env = TestEnv::start_on(sim, &[]).await;
    openssl_genkey(&env.path("rsa.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    fails_with(&env.keyctl(&["wrap", "rsa.pem"]), "--srk-auth-file");
    assert!(!env.path("rsa.pem.tpm").exists());

    env.restart_tpmd(&["--srk-auth-file", &srk_auth_s]).await;
    ok(&env.keyctl(&["wrap", "rsa.pem"]));
    sign_and_verify(&env, "rsa.pem.tpm", "rsa.pub.pem", "sha256", &[], &[]);
}

#[tokio::test]
async fn a_tpmd_killed_over_and_over_leaves_the_tpm_usable() {
    // A tpmd killed with SIGKILL leaves its loaded keys and its OIAP session in the TPM
    // 1.2, which keeps them until it restarts; the next tpmd flushes them as it starts.
    // The TPM has 16 session slots: without the flush the 17th start could not sign.
    use sha2::{Digest, Sha256};
    use tpmd_api::dbus::{scheme, GenerateOptions};
    let mut env = TestEnv::start_family(Family::Tpm12).await;
    let key = env
        .proxy()
        .await
        .generate("rsa1024", b"pin", GenerateOptions::default())
        .await
        .unwrap();
    let digest = Sha256::digest(b"killed");
    for start in 0..20 {
        let proxy = env.proxy().await;
        tpmd_tests::calls::sign(&proxy, &key, b"pin", scheme::RSA_PKCS1, "sha256", &digest)
            .await
            .unwrap_or_else(|e| panic!("tpmd start {start}: {e}"));
        env.tpmd.kill();
        env.restart_tpmd(&[]).await;
    }
}
