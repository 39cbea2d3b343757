//! tpmd-ssh-agent reached through agent forwarding, with real OpenSSH: `ssh -A` into sshd
//! on 127.0.0.1, and from the "remote" shell ssh-add, ssh-keygen and
//! `tpmd-ssh-agent --set-auth` on the forwarded socket. A forwarded connection may list
//! keys and sign, but not add keys or set auth values, and is logged as forwarded.
//!
//! And the upstream agent sees each client connection as its own connection, with the
//! client's session bindings: OpenSSH's ssh-agent upstream enforces destination
//! constraints (`ssh-add -h`) on the keys it holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tpmd_tests::ssh::{generate_tpm_key, sign_and_verify, start_openssh_agent, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, run};
use tpmd_tests::{binary, TestEnv};

fn pub_of(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn software_key(dir: &Path, name: &str, key_type: &str) -> PathBuf {
    let path = dir.join(name);
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            key_type,
            "-N",
            "",
            "-C",
            name,
            "-f",
            &path.to_string_lossy(),
        ],
    );
    path
}

/// `ssh -A` into sshd, running `remote` there with the forwarded agent.
fn forwarded(sshd: &Sshd, agent: &AgentProcess, remote: &str) -> Output {
    sshd.ssh(agent, &["ForwardAgent=yes"], remote)
}

#[tokio::test]
async fn a_forwarded_connection_signs_but_cannot_add_keys_or_set_auth() {
    let env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    let login = generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "ecc-p256", "login@tpm");
    let pin_file = env.path("pin");
    std::fs::write(&pin_file, "2468\n").unwrap();
    let guarded = agent.ssh_dir().join("guarded.tpm");
    ok(&env.keyctl(&[
        "generate",
        "-t",
        "ecc-p256",
        "-o",
        &guarded.to_string_lossy(),
        "-C",
        "guarded@tpm",
        "--auth-file",
        &pin_file.to_string_lossy(),
    ]));
    let sshd = Sshd::start(
        "ecdsa-sha2-nistp256",
        &std::fs::read_to_string(pub_of(&login)).unwrap(),
    );

    // Listing and signing work through forwarding.
    let out = forwarded(&sshd, &agent, "ssh-add -l");
    assert!(
        ok(&out).contains("login@tpm"),
        "{}{}",
        stderr(&out),
        sshd.log_text()
    );
    let message = env.path("message.txt");
    std::fs::write(&message, b"signed on the remote host\n").unwrap();
    let sign = forwarded(
        &sshd,
        &agent,
        &format!(
            "ssh-keygen -Y sign -n file -f {} {}",
            pub_of(&login).display(),
            message.display()
        ),
    );
    ok(&sign);
    let allowed = env.path("allowed");
    std::fs::write(
        &allowed,
        format!(
            "signer@test {}",
            std::fs::read_to_string(pub_of(&login)).unwrap().trim()
        ),
    )
    .unwrap();
    ok(&Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "file", "-I", "signer@test", "-f"])
        .arg(&allowed)
        .arg("-s")
        .arg(format!("{}.sig", message.display()))
        .stdin(std::fs::File::open(&message).unwrap())
        .output()
        .unwrap());
    // ssh-keygen -Y sign does not overwrite a signature: make room for the next one.
    std::fs::remove_file(format!("{}.sig", message.display())).unwrap();

    // ssh-add of a key on the remote host is refused; it is not in the agent.
    let added = software_key(&env.path(""), "remote_key", "ecdsa");
    let out = forwarded(&sshd, &agent, &format!("ssh-add {}", added.display()));
    assert!(!out.status.success(), "a forwarded ssh-add added a key");
    assert!(!ok(&agent.ssh_add(&["-l"])).contains("remote_key"));

    // --set-auth from the remote host: refused with one line; the key still has none.
    let out = forwarded(
        &sshd,
        &agent,
        &format!(
            "{} --set-auth {} < {}",
            binary("tpmd-ssh-agent").display(),
            guarded.display(),
            pin_file.display()
        ),
    );
    assert!(!out.status.success(), "a forwarded --set-auth was accepted");
    // sshd's own debug lines share the remote stderr; ours is one line.
    let err = stderr(&out);
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("tpmd-ssh-agent"))
        .collect();
    assert_eq!(ours.len(), 1, "{err}");
    assert!(ours[0].contains("agent forwarding"), "{err}");
    let (sign, _) = sign_and_verify(&agent, &pub_of(&guarded), &message);
    assert!(
        !sign.status.success(),
        "the forwarded auth value was used anyway"
    );

    let log = agent.log_text();
    assert!(
        log.contains("is forwarded to host SHA256:"),
        "forwarding not logged: {log}"
    );
    assert!(
        log.contains("refused to add keys for a connection forwarded"),
        "{log}"
    );
    assert!(
        log.contains("refused to set auth values for a connection forwarded"),
        "{log}"
    );

    // The same from this machine works: the refusals were about forwarding.
    let mut set = Command::new(binary("tpmd-ssh-agent"))
        .arg("--set-auth")
        .arg(&guarded)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .stdin(std::fs::File::open(&pin_file).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = set.wait().unwrap();
    assert!(status.success());
    let (sign, verify) = sign_and_verify(&agent, &pub_of(&guarded), &message);
    ok(&sign);
    ok(&verify.unwrap());
    ok(&agent.ssh_add(&[&added.to_string_lossy()]));
    assert!(ok(&agent.ssh_add(&["-l"])).contains("remote_key"));
}

/// `ssh-add -h HOST -H KNOWN_HOSTS KEY` through our agent.
fn add_for_destination(agent: &AgentProcess, key: &Path, host: &str, known_hosts: &Path) {
    ok(&agent.ssh_add(&[
        "-H",
        &known_hosts.to_string_lossy(),
        "-h",
        host,
        &key.to_string_lossy(),
    ]));
}

#[tokio::test]
async fn destination_constraints_held_upstream_still_apply() {
    let env = TestEnv::start().await;
    let upstream = start_openssh_agent(env.dir.path());
    let agent = AgentProcess::start(
        &env,
        &["--upstream", &upstream.socket.to_string_lossy()],
        &[],
    );
    let dir = env.path("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let here = software_key(&dir, "for_this_host", "ed25519");
    let elsewhere = software_key(&dir, "for_another_host", "ed25519");
    let sshd = Sshd::start(
        "ssh-ed25519",
        &std::fs::read_to_string(pub_of(&here)).unwrap(),
    );
    // This sshd's host key, and a host key of a machine that does not exist.
    let host_key = std::fs::read_to_string(&sshd.host_key_pub).unwrap();
    let other_host = software_key(&dir, "other_host_key", "ed25519");
    let known_hosts = dir.join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "127.0.0.1 {}\nelsewhere {}\n",
            host_key.trim(),
            std::fs::read_to_string(pub_of(&other_host)).unwrap().trim()
        ),
    )
    .unwrap();
    add_for_destination(&agent, &here, "127.0.0.1", &known_hosts);
    add_for_destination(&agent, &elsewhere, "elsewhere", &known_hosts);
    assert!(agent
        .log_text()
        .contains("handing it to the upstream agent"));

    // OpenSSH's agent lets a key constrained to this host sign only on a connection
    // bound to this host: which it is, because our agent passed the binding on.
    let out = sshd.ssh_true(&agent, &[]);
    assert!(
        out.status.success(),
        "login with the key constrained to this host failed: {}\n{}",
        stderr(&out),
        agent.log_text()
    );

    // The key constrained to another host is not usable here, even where it is authorized.
    std::fs::write(
        &sshd.authorized_keys,
        std::fs::read_to_string(pub_of(&elsewhere)).unwrap(),
    )
    .unwrap();
    let out = sshd.ssh_true(&agent, &[]);
    assert!(
        !out.status.success(),
        "a key constrained to another host logged in here"
    );
}
