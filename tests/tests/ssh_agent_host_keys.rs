//! sshd's host keys in the TPM: `tpm-keyctl wrap` of an ECDSA and an RSA host key, the
//! plaintext keys moved away to a backup, a system-style tpmd-ssh-agent instance serving
//! only those key files (the configuration of systemd/ssh-hostkeys.conf), and a real
//! sshd on 127.0.0.1 with `HostKeyAgent` and `HostKey` naming the public halves. The
//! client checks the host key against known_hosts, for each key type; a wrong
//! known_hosts entry is refused; sshd offers no other host key; and the instance refuses
//! to have its keys changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tpmd_tests::ssh::{login_user, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, run};
use tpmd_tests::TestEnv;

fn keygen(path: &Path, args: &[&str]) {
    let mut full = vec!["-q", "-N", "", "-C", "", "-f"];
    let p = path.to_string_lossy().into_owned();
    full.push(&p);
    full.extend_from_slice(args);
    run("ssh-keygen", &full);
}

fn public_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut parts = text.split_whitespace();
    format!("{} {}", parts.next().unwrap(), parts.next().unwrap())
}

/// ssh with a plain user key file (no agent), checking the host key strictly against
/// `known_hosts`, accepting only `host_algorithm`.
fn ssh(sshd: &Sshd, user_key: &Path, known_hosts: &Path, host_algorithm: &str) -> Output {
    Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("IdentityFile={}", user_key.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-o")
        .arg(format!("HostKeyAlgorithms={host_algorithm}"))
        .env_remove("SSH_AUTH_SOCK")
        .arg("-p")
        .arg(sshd.port.to_string())
        .arg(format!("{}@127.0.0.1", login_user()))
        .arg("true")
        .output()
        .unwrap()
}

#[tokio::test]
async fn sshd_signs_with_host_keys_held_in_the_tpm() {
    let env = TestEnv::start().await;
    let etc_ssh = env.path("etc-ssh");
    let backup = env.path("offline-backup");
    std::fs::create_dir_all(&etc_ssh).unwrap();
    std::fs::create_dir_all(&backup).unwrap();

    // The host keys as Debian makes them, wrapped into the TPM, the plaintext moved away.
    let mut wrapped = Vec::new();
    for (name, args) in [
        ("ssh_host_ecdsa_key", ["-t", "ecdsa", "-b", "256"]),
        ("ssh_host_rsa_key", ["-t", "rsa", "-b", "2048"]),
    ] {
        let key = etc_ssh.join(name);
        keygen(&key, &args);
        ok(&env.keyctl(&["wrap", &key.to_string_lossy()]));
        let tpm = PathBuf::from(format!("{}.tpm", key.display()));
        let text = std::fs::read_to_string(&tpm).unwrap();
        assert!(
            text.starts_with("-----BEGIN TSS2 PRIVATE KEY-----"),
            "{text}"
        );
        std::fs::rename(&key, backup.join(name)).unwrap();
        wrapped.push((key, tpm));
    }
    for (key, _) in &wrapped {
        assert!(
            !key.exists(),
            "the plaintext host key {} is still there",
            key.display()
        );
    }

    // The system instance: only these key files, nothing else, no changes.
    let config = env.path("ssh-hostkeys.conf");
    let mut text = String::from("ssh-dir = no\nfixed-keys = yes\nnon-tpm-keys = refuse\n");
    for (_, tpm) in &wrapped {
        text.push_str(&format!("key-file = {}\n", tpm.display()));
    }
    std::fs::write(&config, text).unwrap();
    let agent = AgentProcess::start(&env, &["--config", &config.to_string_lossy()], &[]);
    let listed = ok(&agent.ssh_add(&["-L"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let user_key = env.path("user_key");
    keygen(&user_key, &["-t", "ed25519"]);
    let ecdsa_pub = PathBuf::from(format!("{}.pub", wrapped[0].0.display()));
    let rsa_pub = PathBuf::from(format!("{}.pub", wrapped[1].0.display()));
    let host_keys = format!(
        "HostKeyAgent {}\nHostKey {}\nHostKey {}\n",
        agent.socket.display(),
        ecdsa_pub.display(),
        rsa_pub.display()
    );
    let authorized = std::fs::read_to_string(format!("{}.pub", user_key.display())).unwrap();
    let sshd =
        Sshd::start_with_host_keys(&host_keys, ecdsa_pub.clone(), "ssh-ed25519", &authorized);

    // sshd offers the TPM keys and nothing else.
    let scan = Command::new("ssh-keyscan")
        .args(["-p", &sshd.port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let offered: Vec<String> = String::from_utf8_lossy(&scan.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect();
    let mut want = vec![public_line(&ecdsa_pub), public_line(&rsa_pub)];
    let mut got = offered.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "sshd offers other host keys: {offered:?}");

    // The client verifies each host key against known_hosts.
    let host = format!("[127.0.0.1]:{}", sshd.port);
    for (public, algorithm) in [
        (&ecdsa_pub, "ecdsa-sha2-nistp256"),
        (&rsa_pub, "rsa-sha2-512"),
        (&rsa_pub, "rsa-sha2-256"),
    ] {
        let known = env.path(&format!("known_hosts_{algorithm}"));
        std::fs::write(&known, format!("{host} {}\n", public_line(public))).unwrap();
        let out = ssh(&sshd, &user_key, &known, algorithm);
        assert!(
            out.status.success(),
            "login with host key {algorithm} failed: {}\nsshd: {}\nagent: {}",
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

    // A known_hosts that names another key for this host: the client refuses.
    let other = env.path("other_host_key");
    keygen(&other, &["-t", "ecdsa", "-b", "256"]);
    let known = env.path("known_hosts_wrong");
    let other_pub = PathBuf::from(format!("{}.pub", other.display()));
    std::fs::write(&known, format!("{host} {}\n", public_line(&other_pub))).unwrap();
    let out = ssh(&sshd, &user_key, &known, "ecdsa-sha2-nistp256");
    assert!(
        !out.status.success(),
        "logged in to a host with an unknown key"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The instance's key set is fixed: no adding, removing or locking.
    let out = agent.ssh_add(&[&user_key.to_string_lossy()]);
    assert!(
        !out.status.success(),
        "a key was added to the host-key agent"
    );
    let out = agent.ssh_add(&["-D"]);
    assert!(!out.status.success(), "the host keys were removed");
    assert_eq!(ok(&agent.ssh_add(&["-L"])).lines().count(), 2);
    assert!(
        agent.log_text().contains("serves a fixed set of key files"),
        "{}",
        agent.log_text()
    );
}
