//! Destination constraints (`ssh-add -h`) on a key held in the TPM, enforced by
//! tpmd-ssh-agent itself: two sshds on 127.0.0.1 (host_a, host_b), an ECDSA key added
//! with `ssh-add -h host_a` (wrapped into the TPM). It logs in to host_a, not to host_b;
//! (the decision on each signature is unit-tested in ssh-agent's destination/permit.rs);
//! through `ssh -A` to host_a, the hop on to host_b is refused, and the forwarded agent
//! does not even list the key there. Allowed `host_a>host_b`, the same hop works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use tpmd_tests::ssh::{login_user, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, run};
use tpmd_tests::TestEnv;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// known_hosts naming each sshd by its alias.
fn known_hosts(path: &Path, hosts: &[(&str, &Sshd)]) {
    let text: String = hosts
        .iter()
        .map(|(alias, sshd)| {
            format!(
                "{alias} {}",
                std::fs::read_to_string(&sshd.host_key_pub).unwrap()
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

/// ssh from the "remote" shell on host_a to host_b, with the forwarded agent.
fn hop_command(sshd_b: &Sshd, known: &Path, remote: &str) -> String {
    format!(
        "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=no -o StrictHostKeyChecking=yes \
         -o UserKnownHostsFile={} -o HostKeyAlias=host_b -o LogLevel=ERROR -p {} {}@127.0.0.1 {remote}",
        known.display(),
        sshd_b.port,
        login_user()
    )
}

/// ssh to `sshd` through the agent (the harness does not check this first hop's host
/// key; the agent's session binding carries it all the same).
fn to(sshd: &Sshd, agent: &AgentProcess, alias: &str, forward: bool, remote: &str) -> Output {
    let alias_option = format!("HostKeyAlias={alias}");
    let mut options = vec![alias_option.as_str()];
    if forward {
        options.push("ForwardAgent=yes");
    }
    sshd.ssh(agent, &options, remote)
}

#[tokio::test]
async fn a_tpm_key_restricted_to_a_host_is_refused_through_a_disallowed_hop() {
    let env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    let key: PathBuf = env.path("restricted");
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ecdsa",
            "-b",
            "256",
            "-N",
            "",
            "-C",
            "restricted",
            "-f",
            &key.to_string_lossy(),
        ],
    );
    let authorized = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    let sshd_a = Sshd::start("ecdsa-sha2-nistp256", &authorized);
    let sshd_b = Sshd::start("ecdsa-sha2-nistp256", &authorized);
    let known = env.path("known_hosts");
    known_hosts(&known, &[("host_a", &sshd_a), ("host_b", &sshd_b)]);
    let key_s = key.to_string_lossy().into_owned();
    let known_s = known.to_string_lossy().into_owned();

    ok(&agent.ssh_add(&["-h", "host_a", "-H", &known_s, &key_s]));
    let log = agent.log_text();
    assert!(
        log.contains("\"restricted\", now held as a TPM-wrapped blob, only for host_a"),
        "{log}"
    );
    // The private key file is no longer needed: the agent signs with the TPM.
    std::fs::remove_file(&key).unwrap();

    let out = to(&sshd_a, &agent, "host_a", false, "true");
    assert!(
        out.status.success(),
        "login to host_a refused: {}\n{}",
        stderr(&out),
        agent.log_text()
    );
    // Bound to host_b, the connection is not even shown the key (as with OpenSSH's
    // ssh-agent), so ssh has nothing to log in with.
    let signatures = agent.log_text().matches("signing with").count();
    let out = to(&sshd_b, &agent, "host_b", false, "true");
    assert!(
        !out.status.success(),
        "logged in to host_b with a key restricted to host_a"
    );
    assert_eq!(agent.log_text().matches("signing with").count(), signatures);

    // Through host_a to host_b: refused, and the key is not even listed on host_a.
    let out = to(
        &sshd_a,
        &agent,
        "host_a",
        true,
        &hop_command(&sshd_b, &known, "true"),
    );
    assert!(
        !out.status.success(),
        "hopped from host_a to host_b: {}",
        stderr(&out)
    );
    let out = to(&sshd_a, &agent, "host_a", true, "ssh-add -L");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("restricted"),
        "the forwarded agent lists a key that may not be used beyond host_a"
    );

    // Allowed to go on from host_a to host_b, the same hop logs in.
    ok(&agent.ssh_add(&["-D"]));
    let key2 = env.path("restricted2");
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ecdsa",
            "-b",
            "256",
            "-N",
            "",
            "-C",
            "restricted2",
            "-f",
            &key2.to_string_lossy(),
        ],
    );
    let authorized = std::fs::read_to_string(format!("{}.pub", key2.display())).unwrap();
    std::fs::write(&sshd_a.authorized_keys, &authorized).unwrap();
    std::fs::write(&sshd_b.authorized_keys, &authorized).unwrap();
    ok(&agent.ssh_add(&[
        "-h",
        "host_a",
        "-h",
        "host_a>host_b",
        "-H",
        &known_s,
        &key2.to_string_lossy(),
    ]));
    let out = to(
        &sshd_a,
        &agent,
        "host_a",
        true,
        &hop_command(&sshd_b, &known, "echo hopped"),
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hopped"),
        "the allowed hop failed: {}\n{}",
        stderr(&out),
        agent.log_text()
    );
    assert!(
        agent.log_text().contains("only for host_a, host_a>host_b"),
        "{}",
        agent.log_text()
    );
}
