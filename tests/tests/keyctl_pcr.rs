//! Keys bound to PCRs, through tpm-keyctl and tpmd on swtpm (issue 12): a key wrapped
//! or generated with `--pcr sha256:16` signs; once PCR 16 is extended it fails with an
//! error naming the PCR; a key bound to an owner's signed policies works again after
//! `tpm-keyctl policy sign` for the new value, without a re-wrap; ssh through the agent
//! with a PCR-bound key.
//!
//! swtpm serves one connection at a time, so tpmd is stopped while tpm2-tools extends
//! the PCR, and started again on the same simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::Output;

use tpmd_api::recorded_pcrs::parse_recorded_values;
use tpmd_api::TpmKeyFile;
use tpmd_tests::ssh::{generate_tpm_key, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, openssl_genkey, openssl_verify, run, tpm2_tools_ok};
use tpmd_tests::TestEnv;

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// tpm-keyctl with the test's own per-user configuration (policies) directory.
fn keyctl(env: &TestEnv, args: &[&str]) -> Output {
    env.keyctl_cmd(args)
        .env("XDG_CONFIG_HOME", env.path("config"))
        .output()
        .unwrap()
}

/// Extends PCR 16 with tpm2-tools while tpmd is stopped, then starts tpmd again.
async fn extend_pcr16(env: &mut TestEnv, extra: &[&str]) {
    env.tpmd.stop();
    tpm2_tools_ok(
        &env.sim,
        env.dir.path(),
        &format!("tpm2_pcrextend 16:sha256={}", "ab".repeat(32)),
    );
    env.restart_tpmd(extra).await;
}

/// Signs `msg` with `key` through tpm-keyctl and checks the signature with openssl.
fn signs(env: &TestEnv, key: &str) -> Result<(), String> {
    let out = keyctl(
        env,
        &["sign", "-k", key, "-i", "msg", "-o", &format!("{key}.sig")],
    );
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let public = ok(&keyctl(env, &["pubkey", key]));
    fs::write(env.path(&format!("{key}.pub.pem")), public).unwrap();
    assert!(
        openssl_verify(
            &env.path(&format!("{key}.pub.pem")),
            &env.path("msg"),
            &env.path(&format!("{key}.sig")),
            "sha256",
            &[],
        ),
        "openssl rejects the signature of {key}"
    );
    Ok(())
}

fn one_line(error: &str) -> &str {
    assert_eq!(error.trim_end().lines().count(), 1, "not one line: {error}");
    error.trim_end()
}

fn key_file(path: &Path) -> TpmKeyFile {
    TpmKeyFile::parse(&fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn pcr_bound_keys_sign_until_the_pcr_moves() {
    let mut env = TestEnv::start().await;
    fs::write(env.path("msg"), b"bound to the boot state").unwrap();

    // `pcr` prints lines a values file takes; a fresh swtpm's PCR 16 is zero.
    let shown = ok(&keyctl(&env, &["pcr", "sha256:16"]));
    assert_eq!(shown.trim(), format!("sha256:16={ZERO}"));
    let all = ok(&keyctl(&env, &["pcr"]));
    assert_eq!(all.lines().count(), 24, "{all}");
    assert!(all.lines().all(|l| l.starts_with("sha256:")), "{all}");

    openssl_genkey(&env.path("p256.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    openssl_genkey(&env.path("rsa.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    ok(&keyctl(&env, &["wrap", "--pcr", "sha256:16", "p256.pem"]));
    // With an auth value, the policy asks for it as well (PolicyAuthValue).
    fs::write(env.path("pin"), "1234\n").unwrap();
    ok(&keyctl(
        &env,
        &[
            "wrap",
            "--pcr",
            "sha256:16",
            "--auth-file",
            "pin",
            "rsa.pem",
        ],
    ));
    // Values from a file: today's, as `pcr` printed them.
    fs::write(env.path("values.txt"), &shown).unwrap();
    ok(&keyctl(
        &env,
        &[
            "generate",
            "-t",
            "ecc-p256",
            "--pcr",
            "sha256:16",
            "--pcr-values",
            "values.txt",
            "-o",
            "generated.tpm",
        ],
    ));
    // With an auth value too: the key is made without userWithAuth (its auth value alone
    // would otherwise open it whatever the PCRs hold), its policy asks for the auth value.
    ok(&keyctl(
        &env,
        &[
            "generate",
            "-t",
            "ecc-p256",
            "--pcr",
            "sha256:16",
            "--auth-file",
            "pin",
            "-o",
            "generated-pin.tpm",
        ],
    ));
    let public = key_file(&env.path("generated-pin.tpm"))
        .public_area()
        .unwrap();
    assert!(!public.has_attributes(tpmd_api::marshal::TPMA_OBJECT_USER_WITH_AUTH));
    ok(&keyctl(
        &env,
        &[
            "sign",
            "-k",
            "generated-pin.tpm",
            "-i",
            "msg",
            "-o",
            "gp.sig",
            "--auth-file",
            "pin",
        ],
    ));
    for key in ["p256.pem.tpm", "rsa.pem.tpm", "generated.tpm"] {
        let file = key_file(&env.path(key));
        assert!(file.has_policy(), "{key}");
        assert!(
            !file
                .public_area()
                .unwrap()
                .has_attributes(tpmd_api::marshal::TPMA_OBJECT_USER_WITH_AUTH),
            "{key}"
        );
        let recorded = parse_recorded_values(file.description.as_deref().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(recorded[0].value(16).unwrap(), [0u8; 32], "{key}");
    }
    let signing = |env: &TestEnv, key: &str| {
        if key.starts_with("rsa") {
            let out = keyctl(
                env,
                &[
                    "sign",
                    "-k",
                    key,
                    "-i",
                    "msg",
                    "-o",
                    "rsa.sig",
                    "--auth-file",
                    "pin",
                ],
            );
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        } else {
            signs(env, key)
        }
    };
    for key in ["p256.pem.tpm", "rsa.pem.tpm", "generated.tpm"] {
        signing(&env, key).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    // Bound to the policy, not to the auth value alone: a wrong one still fails.
    fs::write(env.path("wrong"), "4321\n").unwrap();
    let out = keyctl(
        &env,
        &[
            "sign",
            "-k",
            "rsa.pem.tpm",
            "-i",
            "msg",
            "-o",
            "x.sig",
            "--auth-file",
            "wrong",
        ],
    );
    assert!(!out.status.success());
    let failed_tries = || async {
        let info = env.proxy().await.get_info().await.unwrap();
        info.da_failed_tries.unwrap()
    };
    let before = failed_tries().await;

    extend_pcr16(&mut env, &[]).await;
    let moved = ok(&keyctl(&env, &["pcr", "sha256:16"]));
    assert_ne!(moved.trim(), shown.trim());
    for key in ["p256.pem.tpm", "rsa.pem.tpm", "generated.tpm"] {
        let error = signing(&env, key).expect_err(key);
        let line = one_line(&error);
        assert!(line.contains("sha256:16"), "{key}: {line}");
        // The recorded values let tpmd name the PCR that changed, and say what to do.
        assert!(line.contains("16"), "{key}: {line}");
        assert!(
            line.contains("policy sign") || line.contains("wrap"),
            "{key}: {line}"
        );
    }
    // A policy mismatch never counts against the dictionary-attack counter (the wrong
    // auth value above did).
    let info = env.proxy().await.get_info().await.unwrap();
    assert_eq!(info.da_failed_tries, Some(before), "{info:?}");
}

#[tokio::test]
async fn signed_policies_let_the_owner_approve_new_pcr_values_without_a_rewrap() {
    let mut env = TestEnv::start().await;
    fs::write(env.path("msg"), b"survives the update").unwrap();
    openssl_genkey(&env.path("owner.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            &env.path("owner.pem").to_string_lossy(),
            "-pubout",
            "-out",
            &env.path("owner.pub").to_string_lossy(),
        ],
    );
    openssl_genkey(&env.path("key.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    // Bound to the owner; the first policy, for today's PCR 16, signed at once.
    ok(&keyctl(
        &env,
        &[
            "wrap",
            "--signed-policy",
            "owner.pub",
            "--pcr",
            "sha256:16",
            "--with",
            "owner.pem",
            "--policy-ref",
            "laptop",
            "key.pem",
        ],
    ));
    let file = key_file(&env.path("key.pem.tpm"));
    assert_eq!(file.auth_policies.len(), 1);
    signs(&env, "key.pem.tpm").unwrap();
    // --pcr without --with cannot make that first policy: said in one line.
    let out = keyctl(
        &env,
        &[
            "wrap",
            "--signed-policy",
            "owner.pub",
            "--pcr",
            "sha256:16",
            "-o",
            "x.tpm",
            "key.pem",
        ],
    );
    assert!(!out.status.success());
    assert!(one_line(&String::from_utf8_lossy(&out.stderr)).contains("policy sign"));

    extend_pcr16(&mut env, &[]).await;
    let error = signs(&env, "key.pem.tpm").unwrap_err();
    let line = one_line(&error);
    assert!(line.contains("no authorized policy matches"), "{line}");
    assert!(line.contains("sha256:16"), "{line}");

    // The owner signs the new value (read here from this TPM; on a real machine, from one
    // that already runs the update) into the user's policy directory.
    owner_signs(&env, "laptop", &["--name", "after the update"]);
    let policies = env.path("config").join("tpmd").join("policies");
    assert!(policies.join("after_the_update.policy").exists());
    signs(&env, "key.pem.tpm").unwrap();
    // The key file was not rewritten.
    assert_eq!(key_file(&env.path("key.pem.tpm")), file);
    // A policy for another policyRef does not serve this key.
    fs::remove_file(policies.join("after_the_update.policy")).unwrap();
    owner_signs(&env, "desktop", &["--name", "other"]);
    assert!(signs(&env, "key.pem.tpm").is_err());

    // The system directory tpmd reads serves every user's keys.
    let system = env.path("system-policies");
    fs::create_dir_all(&system).unwrap();
    let system_arg = system.to_string_lossy().into_owned();
    owner_signs(
        &env,
        "laptop",
        &["-o", &format!("{system_arg}/laptop.policy")],
    );
    env.restart_tpmd(&["--policy-dir", &system_arg]).await;
    signs(&env, "key.pem.tpm").unwrap();
}

#[tokio::test]
async fn an_owner_key_in_the_tpm_signs_policies_through_tpmd() {
    let mut env = TestEnv::start().await;
    fs::write(env.path("msg"), b"owner in the TPM").unwrap();
    ok(&keyctl(
        &env,
        &["generate", "-t", "rsa2048", "-o", "owner.tpm"],
    ));
    openssl_genkey(&env.path("key.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    ok(&keyctl(
        &env,
        &["wrap", "--signed-policy", "owner.tpm", "key.pem"],
    ));
    // No policy signed yet: the key cannot be used, and says so.
    let error = signs(&env, "key.pem.tpm").unwrap_err();
    assert!(
        one_line(&error).contains("no authorized policy matches this key"),
        "{error}"
    );
    ok(&keyctl(
        &env,
        &[
            "policy",
            "sign",
            "--pcr",
            "sha256:16",
            "--with",
            "owner.tpm",
            "--name",
            "today",
        ],
    ));
    signs(&env, "key.pem.tpm").unwrap();
    extend_pcr16(&mut env, &[]).await;
    assert!(signs(&env, "key.pem.tpm").is_err());
    ok(&keyctl(
        &env,
        &[
            "policy",
            "sign",
            "--pcr",
            "sha256:16",
            "--with",
            "owner.tpm",
            "--name",
            "tomorrow",
        ],
    ));
    signs(&env, "key.pem.tpm").unwrap();
}

#[tokio::test]
async fn ssh_through_the_agent_with_a_pcr_bound_key() {
    let mut env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    let ssh = agent.ssh_dir();
    let plain = generate_tpm_key(&env, &ssh, "id_plain.tpm", "ecc-p256", "plain@tpm");
    let key = ssh.join("id_pcr.tpm");
    ok(&keyctl(
        &env,
        &[
            "generate",
            "-t",
            "ecc-p256",
            "--pcr",
            "sha256:16",
            "-C",
            "pcr@tpm",
            "-o",
            &key.to_string_lossy(),
        ],
    ));
    let public = |k: &Path| fs::read_to_string(format!("{}.pub", k.display())).unwrap();
    let sshd = Sshd::start("ecdsa-sha2-nistp256", &public(&key));
    let out = sshd.ssh_true(&agent, &[]);
    assert!(
        out.status.success(),
        "ssh with a PCR-bound key failed: {}\nagent: {}",
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );
    assert!(sshd.log_text().contains("Accepted publickey"));

    drop(sshd);
    extend_pcr16(&mut env, &[]).await;
    let sshd = Sshd::start("ecdsa-sha2-nistp256", &public(&key));
    let out = sshd.ssh_true(&agent, &[]);
    assert!(!out.status.success(), "signed after PCR 16 moved");
    assert!(
        agent.log_text().contains("sha256:16"),
        "the agent's log does not say why: {}",
        agent.log_text()
    );
    // The machine's other keys are unaffected.
    let sshd = Sshd::start("ecdsa-sha2-nistp256", &public(&plain));
    ok(&sshd.ssh_true(&agent, &[]));
}

/// libtpmd_pkcs11.so signs with a key bound to signed policies once its user's policy
/// directory holds one, with nothing changed for the application (pkcs11-tool here, in
/// its own process with its own HOME, as an application runs).
#[tokio::test]
async fn the_pkcs11_module_sends_the_users_signed_policies() {
    let env = TestEnv::start().await;
    let home = env.path("home");
    let store = home.join(".local/share/tpmd/keys");
    let config = home.join(".config");
    fs::create_dir_all(&store).unwrap();
    let vars = [
        ("TPMD_BUS_ADDRESS", env.bus.address().to_string()),
        ("HOME", home.display().to_string()),
        (
            "XDG_DATA_HOME",
            home.join(".local/share").display().to_string(),
        ),
        ("XDG_CONFIG_HOME", config.display().to_string()),
    ];
    let keyctl = |args: &[&str]| env.keyctl_cmd(args).envs(vars.clone()).output().unwrap();
    let path = |name: &str| env.path(name).to_string_lossy().into_owned();
    openssl_genkey(&env.path("owner.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            &path("owner.pem"),
            "-pubout",
            "-out",
            &path("owner.pub"),
        ],
    );
    openssl_genkey(&env.path("key.pem"), "EC", &["ec_paramgen_curve:P-256"]);
    run(
        "openssl",
        &[
            "pkey",
            "-in",
            &path("key.pem"),
            "-pubout",
            "-out",
            &path("key.pub.pem"),
        ],
    );
    let stored = store.join("bound.tpm");
    ok(&keyctl(&[
        "wrap",
        "--signed-policy",
        "owner.pub",
        "key.pem",
        "-o",
        &stored.to_string_lossy(),
    ]));
    fs::write(store.join("bound.id"), "01").unwrap();
    ok(&keyctl(&[
        "policy",
        "sign",
        "--pcr",
        "sha256:16",
        "--with",
        "owner.pem",
        "--name",
        "today",
    ]));
    let policy = config.join("tpmd/policies/today.policy");
    assert!(policy.exists());
    fs::write(env.path("msg"), b"signed under a signed policy").unwrap();

    let pkcs11_sign = || {
        let _ = fs::remove_file(env.path("msg.sig"));
        std::process::Command::new("pkcs11-tool")
            .envs(vars.clone())
            .env("TPMD_PKCS11_DEBUG", "1")
            .env_remove("TPMD_SOCKET")
            .arg("--module")
            .arg(tpmd_tests::pkcs11::module_path())
            .args(["--sign", "--id", "01", "-m", "ECDSA-SHA256"])
            .args(["--signature-format", "openssl", "-i"])
            .arg(env.path("msg"))
            .arg("-o")
            .arg(env.path("msg.sig"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = pkcs11_sign();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(openssl_verify(
        &env.path("key.pub.pem"),
        &env.path("msg"),
        &env.path("msg.sig"),
        "sha256",
        &[],
    ));
    // Without the policy file the same call fails: the module sent it.
    fs::remove_file(&policy).unwrap();
    let out = pkcs11_sign();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no authorized policy matches"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The owner (owner.pem) signs PCR 16's current value for keys whose PolicyAuthorize
/// names `policy_ref`; `extra` says where the policy goes (the user's directory if not).
fn owner_signs(env: &TestEnv, policy_ref: &str, extra: &[&str]) {
    let mut args = vec![
        "policy",
        "sign",
        "--pcr",
        "sha256:16",
        "--with",
        "owner.pem",
        "--policy-ref",
        policy_ref,
    ];
    args.extend(extra);
    ok(&keyctl(env, &args));
}

/// On a TPM 1.2, `wrap --pcr sha1:16` and `generate --pcr sha1:16` bind the key to PCR 16
/// (TPM_PCR_INFO_LONG in the key blob): it signs until the PCR is extended, then fails
/// naming the PCR; signed policies and other banks are refused with the reason.
#[tokio::test]
async fn a_tpm12_key_wrapped_with_pcr_signs_until_the_pcr_moves() {
    use tpmd_tpm12::client::{Tpm12, Transport};

    let mut env = TestEnv::start_family(tpmd_tests::Family::Tpm12).await;
    fs::write(env.path("msg"), b"bound on a TPM 1.2").unwrap();
    let shown = ok(&keyctl(&env, &["pcr", "sha1:16"]));
    assert!(shown.starts_with("sha1:16="), "{shown}");
    let all = ok(&keyctl(&env, &["pcr"]));
    assert_eq!(all.lines().count(), 24, "{all}");
    assert!(all.lines().all(|l| l.starts_with("sha1:")), "{all}");

    openssl_genkey(&env.path("rsa.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    ok(&keyctl(&env, &["wrap", "--pcr", "sha1:16", "rsa.pem"]));
    signs(&env, "rsa.pem.tpm").unwrap();
    ok(&keyctl(
        &env,
        &[
            "generate", "-t", "rsa2048", "--pcr", "sha1:16", "-o", "gen.tpm",
        ],
    ));
    signs(&env, "gen.tpm").unwrap();
    // Another bank, or a signed policy: refused with the reason, in one line.
    openssl_genkey(&env.path("owner.pem"), "RSA", &["rsa_keygen_bits:2048"]);
    for (args, needle) in [
        (&["--pcr", "sha256:16"][..], "sha256"),
        (&["--signed-policy", "owner.pem"][..], "TPM 2.0 feature"),
    ] {
        let mut all_args = vec!["wrap", "-o", "other.tpm"];
        all_args.extend(args);
        all_args.push("rsa.pem");
        let out = keyctl(&env, &all_args);
        assert!(!out.status.success(), "{args:?}");
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(one_line(&error).contains(needle), "{args:?}: {error}");
    }

    env.tpmd.stop();
    Tpm12::connect(Transport::swtpm_tcp(env.sim.port()))
        .unwrap()
        .extend(16, &[0x16; 20])
        .unwrap();
    env.restart_tpmd(&[]).await;
    for key in ["rsa.pem.tpm", "gen.tpm"] {
        let error = signs(&env, key).unwrap_err();
        assert!(one_line(&error).contains("sha1:16"), "{key}: {error}");
    }
}
