//! Keys a TPM cannot hold, with no upstream agent: `ssh-add` of an Ed25519 key (and a
//! P-521 one) keeps it in the agent's memory, says so in the log and in `ssh-add -l`,
//! and `ssh` logs in with it, even with tpmd stopped, since the TPM has no part in it.
//! `ssh-add -d` removes it. With `--non-tpm-keys refuse` such keys are refused with the
//! reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tpmd_tests::ssh::{generate_tpm_key, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, run};
use tpmd_tests::TestEnv;

fn software_key(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let p = path.to_string_lossy().into_owned();
    let mut full = vec!["-q", "-N", "", "-C", name, "-f", &p];
    full.extend_from_slice(args);
    run("ssh-keygen", &full);
    path
}

fn read_pub(key: &Path) -> String {
    std::fs::read_to_string(format!("{}.pub", key.display())).unwrap()
}

#[tokio::test]
async fn keys_a_tpm_cannot_hold_live_in_memory_and_log_in() {
    let mut env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    generate_tpm_key(&env, &agent.ssh_dir(), "id_tpm.tpm", "ecc-p256", "tpm-key");
    let dir = env.path("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let ed = software_key(&dir, "ed-key", &["-t", "ed25519"]);
    let p521 = software_key(&dir, "p521-key", &["-t", "ecdsa", "-b", "521"]);
    for key in [&ed, &p521] {
        ok(&agent.ssh_add(&[&key.to_string_lossy()]));
    }
    let log = agent.log_text();
    assert!(
        log.contains("\"ed-key\", kept in this agent's memory, not in the TPM: Ed25519 keys cannot be held by a TPM"),
        "{log}"
    );
    assert!(
        log.contains("\"p521-key\", kept in this agent's memory, not in the TPM"),
        "{log}"
    );

    // ssh-add -l says which keys are in the TPM and which are not.
    let listed = ok(&agent.ssh_add(&["-l"]));
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not listed: {listed}"))
            .to_string()
    };
    assert!(
        line("ed-key").contains("ed-key [in memory, not TPM]"),
        "{listed}"
    );
    assert!(
        line("p521-key").contains("[in memory, not TPM]"),
        "{listed}"
    );
    assert!(line("tpm-key").contains("tpm-key [TPM]"), "{listed}");

    // ssh logs in with each, and keeps doing so with tpmd stopped: nothing of these
    // keys is in the TPM.
    let authorized = format!("{}{}", read_pub(&ed), read_pub(&p521));
    let sshd = Sshd::start("ssh-ed25519,ecdsa-sha2-nistp521", &authorized);
    env.tpmd.stop();
    for algorithm in ["ssh-ed25519", "ecdsa-sha2-nistp521"] {
        let out = sshd.ssh_true(&agent, &[&format!("PubkeyAcceptedAlgorithms={algorithm}")]);
        assert!(
            out.status.success(),
            "ssh with {algorithm} failed: {}\nsshd: {}\nagent: {}",
            String::from_utf8_lossy(&out.stderr),
            sshd.log_text(),
            agent.log_text()
        );
        assert!(
            agent
                .log_text()
                .contains(&format!("signing with {algorithm}")),
            "{}",
            agent.log_text()
        );
    }
    env.restart_tpmd(&[]).await;

    // Removed, the key is gone and cannot log in.
    ok(&agent.ssh_add(&["-d", &ed.to_string_lossy()]));
    assert!(!ok(&agent.ssh_add(&["-l"])).contains("ed-key"));
    let out = sshd.ssh_true(&agent, &["PubkeyAcceptedAlgorithms=ssh-ed25519"]);
    assert!(!out.status.success(), "logged in with a removed key");
}

#[tokio::test]
async fn with_non_tpm_keys_refuse_they_are_refused_with_the_reason() {
    let env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &["--non-tpm-keys", "refuse"], &[]);
    let dir = env.path("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let ed = software_key(&dir, "ed-key", &["-t", "ed25519"]);
    let out = agent.ssh_add(&[&ed.to_string_lossy()]);
    assert!(!out.status.success(), "an Ed25519 key was accepted");
    assert!(
        agent
            .log_text()
            .contains("refused key \"ed-key\": Ed25519 keys cannot be held by a TPM"),
        "{}",
        agent.log_text()
    );
    // Keys the TPM can hold are still wrapped into it.
    let ec = software_key(&dir, "ec-key", &["-t", "ecdsa", "-b", "256"]);
    ok(&agent.ssh_add(&[&ec.to_string_lossy()]));
    assert!(ok(&agent.ssh_add(&["-l"])).contains("ec-key [TPM]"));
}
