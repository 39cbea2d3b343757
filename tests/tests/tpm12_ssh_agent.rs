//! tpmd-ssh-agent's RSA cases on a TPM 1.2 simulator: the agent is unchanged, tpmd and
//! the client library carry the family difference.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use tpmd_tests::ssh::{generate_tpm_key, sign_and_verify, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, openssl_genkey, run};
use tpmd_tests::{Family, TestEnv};

fn read_pub(key: &Path) -> String {
    std::fs::read_to_string(format!("{}.pub", key.display())).unwrap()
}

#[tokio::test]
async fn serves_and_adds_rsa_keys_on_a_tpm12() {
    let env = TestEnv::start_family(Family::Tpm12).await;
    let agent = AgentProcess::start(&env, &[], &[]);
    let key = generate_tpm_key(&env, &agent.ssh_dir(), "id_rsa.tpm", "rsa2048", "rsa@tpm12");
    let listed = ok(&agent.ssh_add(&["-l"]));
    assert!(
        listed.contains("rsa@tpm12") && listed.contains("(RSA)"),
        "{listed}"
    );

    for algorithm in ["rsa-sha2-256", "rsa-sha2-512"] {
        let sshd = Sshd::start(algorithm, &read_pub(&key));
        let out = sshd.ssh_true(&agent, &[&format!("PubkeyAcceptedAlgorithms={algorithm}")]);
        assert!(
            out.status.success(),
            "ssh with {algorithm} on a TPM 1.2 failed: {}\nsshd: {}\nagent: {}",
            String::from_utf8_lossy(&out.stderr),
            sshd.log_text(),
            agent.log_text()
        );
    }

    let message = env.path("message.txt");
    std::fs::write(&message, b"signed on a TPM 1.2\n").unwrap();
    let (sign, verify) = sign_and_verify(
        &agent,
        Path::new(&format!("{}.pub", key.display())),
        &message,
    );
    ok(&sign);
    ok(&verify.unwrap());

    // ssh-add of a software RSA key wraps it for the 1.2's SRK; ECDSA cannot live there.
    let rsa = env.path("soft_rsa");
    openssl_genkey(&rsa, "RSA", &["rsa_keygen_bits:2048"]);
    let rsa_s = rsa.display().to_string();
    run("chmod", &["600", &rsa_s]);
    ok(&agent.ssh_add(&[&rsa_s]));
    let listed = ok(&agent.ssh_add(&["-l"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let ec = env.path("soft_ec");
    openssl_genkey(&ec, "EC", &["ec_paramgen_curve:P-256"]);
    let ec_s = ec.display().to_string();
    run("chmod", &["600", &ec_s]);
    // A TPM 1.2 cannot hold an ECDSA key: the agent keeps it in memory, as ssh-agent
    // would, and says why.
    ok(&agent.ssh_add(&[&ec_s]));
    let log = agent.log_text();
    assert!(
        log.contains("kept in this agent's memory, not in the TPM") && log.contains("TPM 1.2"),
        "the agent should say where the key is and why: {log}"
    );
    assert!(ok(&agent.ssh_add(&["-l"])).contains("[in memory, not TPM]"));
}
