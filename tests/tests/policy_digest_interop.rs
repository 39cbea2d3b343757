//! The policy digests tpmd_api computes in software against an independent implementation:
//! tpm2-tools driving trial sessions on swtpm (TPM2_PolicyPCR, PolicyAuthValue and
//! PolicyAuthorize run by the TCG reference code), and `tpm2_createpolicy --policy-pcr`.
//! The same selection and values must give the same digest, byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use tpmd_api::marshal::TPM_ALG_SHA256;
use tpmd_api::policy::{
    auth_value_statement, authorize_statement, parse_selection, pcr_statement, pcr_values_digest,
    policy_digest,
};
use tpmd_api::public::TpmPublic;
use tpmd_simulator::Simulator;
use tpmd_tests::tools::{run, tpm2_tools_ok};

/// Runs tpm2-tools commands after flushing the sessions earlier ones left behind
/// (tpm2_createpolicy leaves its trial session, and swtpm has only three slots).
fn tpm2(sim: &Simulator, dir: &Path, script: &str) -> String {
    tpm2_tools_ok(
        sim,
        dir,
        &format!("tpm2_flushcontext -l && tpm2_flushcontext -s && {script}"),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// PCR values for a selection: distinct, recognisable bytes per PCR.
fn values(pcrs: &[u8]) -> Vec<Vec<u8>> {
    pcrs.iter()
        .map(|p| (0..32u8).map(|i| i.wrapping_mul(7) ^ p).collect())
        .collect()
}

fn pcr_policy(selection: &str, values: &[Vec<u8>]) -> tpmd_api::keyfile::PolicyStatement {
    let banks = parse_selection(selection).unwrap();
    let digest = pcr_values_digest(TPM_ALG_SHA256, values).unwrap();
    pcr_statement(&banks, &digest)
}

fn write_values(dir: &Path, values: &[Vec<u8>]) {
    fs::write(dir.join("values.bin"), values.concat()).unwrap();
}

#[test]
fn pcr_policies_match_tpm2_createpolicy_and_trial_sessions() {
    let sim = Simulator::start_temporary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (selection, pcrs) in [
        ("sha256:0,16", vec![0u8, 16]),
        ("sha256:16", vec![16]),
        ("sha256:0,2,4,7", vec![0, 2, 4, 7]),
        ("sha256:23", vec![23]),
    ] {
        let values = values(&pcrs);
        write_values(dir.path(), &values);
        let ours = policy_digest(TPM_ALG_SHA256, &[pcr_policy(selection, &values)]).unwrap();

        let stdout = tpm2(
            &sim,
            dir.path(),
            &format!("tpm2_createpolicy --policy-pcr -l {selection} -f values.bin -L created.bin"),
        );
        let created = fs::read(dir.path().join("created.bin")).unwrap();
        assert_eq!(hex(&ours), hex(&created), "{selection}: {stdout}");

        // PolicyPCR then PolicyAuthValue in one trial session: the shape of a PCR-bound
        // key with an auth value.
        tpm2(
            &sim,
            dir.path(),
            &format!(
                "tpm2_startauthsession -S trial.ctx && \
                 tpm2_policypcr -S trial.ctx -l {selection} -f values.bin -L pcr.bin && \
                 tpm2_policyauthvalue -S trial.ctx -L both.bin && \
                 tpm2_flushcontext trial.ctx"
            ),
        );
        let both = fs::read(dir.path().join("both.bin")).unwrap();
        let ours = policy_digest(
            TPM_ALG_SHA256,
            &[pcr_policy(selection, &values), auth_value_statement()],
        )
        .unwrap();
        assert_eq!(hex(&ours), hex(&both), "{selection} with PolicyAuthValue");
    }
}

#[test]
fn policy_authorize_matches_a_trial_session() {
    let sim = Simulator::start_temporary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    for (algorithm, option) in [
        ("RSA", "rsa_keygen_bits:2048"),
        ("EC", "ec_paramgen_curve:P-256"),
    ] {
        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                algorithm,
                "-pkeyopt",
                option,
                "-out",
                &p("owner.pem"),
            ],
        );
        run(
            "openssl",
            &[
                "pkey",
                "-in",
                &p("owner.pem"),
                "-pubout",
                "-out",
                &p("owner.pub.pem"),
            ],
        );
        let key_type = if algorithm == "RSA" { "rsa" } else { "ecc" };
        for policy_ref in [&b""[..], b"laptop"] {
            fs::write(dir.path().join("ref.bin"), policy_ref).unwrap();
            fs::write(dir.path().join("approved.bin"), [0x42u8; 32]).unwrap();
            let reference = if policy_ref.is_empty() {
                ""
            } else {
                "-q ref.bin"
            };
            tpm2(
                &sim,
                dir.path(),
                &format!(
                    "tpm2_loadexternal -C o -G {key_type} -u owner.pub.pem -c owner.ctx -n owner.name && \
                     tpm2_readpublic -c owner.ctx -o owner.tpm2b > /dev/null && \
                     tpm2_startauthsession -S trial.ctx && \
                     tpm2_policyauthorize -S trial.ctx -L authorize.bin -i approved.bin {reference} -n owner.name && \
                     tpm2_flushcontext trial.ctx"
                ),
            );
            let owner =
                TpmPublic::from_tpm2b(&fs::read(dir.path().join("owner.tpm2b")).unwrap()).unwrap();
            // tpm2-tools writes the name as nameAlg || digest, as TPM2_ReadPublic gives it.
            assert_eq!(
                owner.name().unwrap(),
                fs::read(dir.path().join("owner.name")).unwrap()
            );
            let ours = policy_digest(
                TPM_ALG_SHA256,
                &[authorize_statement(&owner, policy_ref, &[])],
            )
            .unwrap();
            let theirs = fs::read(dir.path().join("authorize.bin")).unwrap();
            assert_eq!(
                hex(&ours),
                hex(&theirs),
                "{algorithm} owner, policyRef {policy_ref:?}"
            );
            // The key's policy continues after PolicyAuthorize: with PolicyAuthValue.
            tpm2(
                &sim,
                dir.path(),
                &format!(
                    "tpm2_loadexternal -C o -G {key_type} -u owner.pub.pem -c owner.ctx -n owner.name && \
                     tpm2_startauthsession -S trial.ctx && \
                     tpm2_policyauthorize -S trial.ctx -i approved.bin {reference} -n owner.name && \
                     tpm2_policyauthvalue -S trial.ctx -L then-auth.bin && \
                     tpm2_flushcontext trial.ctx"
                ),
            );
            let ours = policy_digest(
                TPM_ALG_SHA256,
                &[
                    authorize_statement(&owner, policy_ref, &[]),
                    auth_value_statement(),
                ],
            )
            .unwrap();
            let theirs = fs::read(dir.path().join("then-auth.bin")).unwrap();
            assert_eq!(hex(&ours), hex(&theirs));
        }
    }
}

/// A policy signed by `tpm-keyctl policy sign` (software owner, offline) is accepted by the
/// TPM as tpm2-tools drives it: TPM2_VerifySignature of the authorization, then in a real
/// policy session PolicyPCR and PolicyAuthorize with the ticket; the session then holds
/// the key's policy digest. Once the PCR moves, PolicyAuthorize refuses.
#[test]
fn policies_signed_by_tpm_keyctl_satisfy_policy_authorize_on_the_tpm() {
    use tpmd_api::auth_policy_file;
    use tpmd_api::client::key_policy::KeyPolicy;
    use tpmd_api::policy::{authorization_digest, Authorize};

    let sim = Simulator::start_temporary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let p = |name: &str| path(name).to_string_lossy().into_owned();
    fs::write(
        path("values.txt"),
        format!("sha256:16={}\n", "00".repeat(32)),
    )
    .unwrap();
    for (algorithm, option) in [
        ("RSA", "rsa_keygen_bits:2048"),
        ("EC", "ec_paramgen_curve:P-256"),
    ] {
        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                algorithm,
                "-pkeyopt",
                option,
                "-out",
                &p("owner.pem"),
            ],
        );
        let out = std::process::Command::new(tpmd_tests::binary("tpm-keyctl"))
            .args(["policy", "sign", "--pcr", "sha256:16", "--values"])
            .arg(path("values.txt"))
            .arg("--with")
            .arg(path("owner.pem"))
            .args(["--policy-ref", "laptop", "--name", "first", "--force", "-o"])
            .arg(path("first.policy"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let policy = auth_policy_file::parse(&fs::read(path("first.policy")).unwrap()).unwrap();
        assert_eq!(policy.name.as_deref(), Some("first"));
        let authorize =
            Authorize::parse(&policy.statements.last().unwrap().command_policy).unwrap();
        let approved = policy_digest(TPM_ALG_SHA256, &policy.statements[..1]).unwrap();
        let a_hash = authorization_digest(TPM_ALG_SHA256, &approved, b"laptop").unwrap();
        fs::write(path("owner.tpm2b"), &authorize.signer_public).unwrap();
        fs::write(path("signature.bin"), &authorize.signature).unwrap();
        fs::write(path("ahash.bin"), &a_hash).unwrap();
        fs::write(path("approved.bin"), &approved).unwrap();
        fs::write(path("ref.bin"), b"laptop").unwrap();
        let session = "tpm2_loadexternal -C o -u owner.tpm2b -c owner.ctx -n owner.name && \
             tpm2_verifysignature -c owner.ctx -d ahash.bin -s signature.bin -t ticket.bin && \
             tpm2_startauthsession --policy-session -S session.ctx && \
             tpm2_policypcr -S session.ctx -l sha256:16 && \
             tpm2_policyauthorize -S session.ctx -L reached.bin -i approved.bin -q ref.bin -n owner.name -t ticket.bin";
        tpm2(&sim, dir.path(), session);
        let key_policy = KeyPolicy::signed(&authorize.signer, b"laptop", false);
        assert_eq!(
            hex(&fs::read(path("reached.bin")).unwrap()),
            hex(&key_policy.digest().unwrap())
        );
        // PCR 16 moves: the signed values no longer hold.
        tpm2(
            &sim,
            dir.path(),
            &format!("tpm2_pcrextend 16:sha256={}", "ab".repeat(32)),
        );
        let refused = tpmd_tests::tools::tpm2_tools(
            &sim,
            dir.path(),
            &format!("tpm2_flushcontext -l; tpm2_flushcontext -s; {session}"),
        );
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("policyauthorize"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        tpm2(&sim, dir.path(), "tpm2_pcrreset 16");
    }
}
