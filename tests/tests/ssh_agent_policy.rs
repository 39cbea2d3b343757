//! tpmd-ssh-agent's policies with the real OpenSSH tools: lock/unlock, ssh-add -t
//! lifetime, ssh-add -c confirmation through a scripted SSH_ASKPASS (allowing and
//! denying), an Ed25519 key kept by OpenSSH's ssh-agent upstream, and 200 signatures
//! across a kill and restart of tpmd without a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tpmd_tests::ssh::{generate_tpm_key, sign_and_verify, start_openssh_agent, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, run};
use tpmd_tests::TestEnv;

/// A shell script usable as SSH_ASKPASS: records each prompt in `prompts`, prints
/// `secret` for a passphrase prompt, and for a confirmation exits with the status
/// written in `answer`.
fn askpass_script(dir: &Path, secret: &str) -> PathBuf {
    let script = dir.join("askpass.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n---\\n' \"$1\" >> {dir}/prompts\n\
             if [ \"$SSH_ASKPASS_PROMPT\" = confirm ]; then exit $(cat {dir}/answer); fi\n\
             echo '{secret}'\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("answer"), "1").unwrap();
    script
}

fn software_key(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let p = path.to_string_lossy().into_owned();
    let mut full = args.to_vec();
    full.extend(["-q", "-N", "", "-C", name, "-f", &p]);
    run("ssh-keygen", &full);
    path
}

fn pub_of(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

fn message(env: &TestEnv) -> PathBuf {
    let path = env.path("message.txt");
    std::fs::write(&path, b"policy test\n").unwrap();
    path
}

/// ssh-add -x / -X, the passphrase coming from a scripted askpass.
fn ssh_add_with_passphrase(
    agent: &AgentProcess,
    flag: &str,
    passphrase: &str,
    dir: &Path,
) -> std::process::Output {
    let sub = dir.join(format!("client-{passphrase}"));
    std::fs::create_dir_all(&sub).unwrap();
    let script = askpass_script(&sub, passphrase);
    agent
        .command("ssh-add")
        .arg(flag)
        .env("SSH_ASKPASS", script)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .output()
        .unwrap()
}

#[tokio::test]
async fn lock_and_unlock() {
    let env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    let key = generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "ecc-p256", "locked@tpm");
    let message = message(&env);
    assert!(ok(&agent.ssh_add(&["-l"])).contains("locked@tpm"));

    ok(&ssh_add_with_passphrase(
        &agent,
        "-x",
        "sesame",
        env.dir.path(),
    ));
    let out = agent.ssh_add(&["-l"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no identities"),
        "a locked agent lists keys: {out:?}"
    );
    let (sign, _) = sign_and_verify(&agent, &pub_of(&key), &message);
    assert!(!sign.status.success(), "a locked agent signed");

    let out = ssh_add_with_passphrase(&agent, "-X", "wrong", env.dir.path());
    assert!(!out.status.success(), "unlocked with the wrong passphrase");
    assert!(String::from_utf8_lossy(&agent.ssh_add(&["-l"]).stdout).contains("no identities"));

    // After a wrong passphrase no attempt is compared for 100 ms: retry until then.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ssh_add_with_passphrase(&agent, "-X", "sesame", env.dir.path())
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the right passphrase never unlocked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok(&agent.ssh_add(&["-l"])).contains("locked@tpm"));
    let (sign, verify) = sign_and_verify(&agent, &pub_of(&key), &message);
    ok(&sign);
    ok(&verify.unwrap());
}

#[tokio::test]
async fn lifetime_and_confirm_constraints() {
    let env = TestEnv::start().await;
    let askdir = env.path("askpass");
    std::fs::create_dir_all(&askdir).unwrap();
    let script = askpass_script(&askdir, "unused");
    let agent = AgentProcess::start(&env, &[], &[("SSH_ASKPASS", &script.to_string_lossy())]);
    let dir = env.path("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let message = message(&env);

    // ssh-add -t: gone once its lifetime is over.
    let short = software_key(&dir, "short", &["-t", "ecdsa", "-b", "256"]);
    ok(&agent.ssh_add(&["-t", "3", &short.to_string_lossy()]));
    assert!(ok(&agent.ssh_add(&["-l"])).contains("short"));
    std::thread::sleep(Duration::from_secs(5));
    let listed = String::from_utf8_lossy(&agent.ssh_add(&["-l"]).stdout).into_owned();
    assert!(
        !listed.contains("short"),
        "expired key still listed: {listed}"
    );
    assert!(agent.log_text().contains("reached its lifetime"));

    // ssh-add -c: each use asks through SSH_ASKPASS, naming the requesting process.
    let confirmed = software_key(&dir, "confirmed", &["-t", "rsa", "-b", "2048"]);
    ok(&agent.ssh_add(&["-c", &confirmed.to_string_lossy()]));
    std::fs::write(askdir.join("answer"), "0").unwrap();
    let (sign, verify) = sign_and_verify(&agent, &pub_of(&confirmed), &message);
    ok(&sign);
    ok(&verify.unwrap());
    let prompts = std::fs::read_to_string(askdir.join("prompts")).unwrap();
    assert!(prompts.contains("Allow use of key confirmed?"), "{prompts}");
    assert!(
        prompts.contains("ssh-keygen"),
        "the prompt does not name the requester: {prompts}"
    );

    std::fs::write(askdir.join("answer"), "1").unwrap();
    let (sign, _) = sign_and_verify(&agent, &pub_of(&confirmed), &message);
    assert!(!sign.status.success(), "signed although the user said no");
    assert!(agent.log_text().contains("was not confirmed"));
}

#[tokio::test]
async fn ed25519_keys_go_to_the_upstream_agent() {
    let env = TestEnv::start().await;
    let upstream = start_openssh_agent(env.dir.path());
    let agent = AgentProcess::start(
        &env,
        &["--upstream", &upstream.socket.to_string_lossy()],
        &[],
    );
    generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "rsa2048", "tpm-key");
    let dir = env.path("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let ed = software_key(&dir, "edkey", &["-t", "ed25519"]);
    ok(&agent.ssh_add(&[&ed.to_string_lossy()]));
    assert!(agent
        .log_text()
        .contains("handing it to the upstream agent"));

    // OpenSSH's agent holds it; ours lists both.
    let theirs = ok(&Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &upstream.socket)
        .output()
        .unwrap());
    assert!(
        theirs.contains("edkey") && !theirs.contains("tpm-key"),
        "{theirs}"
    );
    let ours = ok(&agent.ssh_add(&["-l"]));
    assert!(ours.contains("edkey") && ours.contains("tpm-key"), "{ours}");

    // Signing with it through our socket: ssh-keygen -Y and ssh into sshd.
    let message = message(&env);
    let (sign, verify) = sign_and_verify(&agent, &pub_of(&ed), &message);
    ok(&sign);
    ok(&verify.unwrap());
    let sshd = Sshd::start(
        "ssh-ed25519",
        &std::fs::read_to_string(pub_of(&ed)).unwrap(),
    );
    let out = sshd.ssh_true(&agent, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Removing it through us removes it upstream.
    ok(&agent.ssh_add(&["-d", &ed.to_string_lossy()]));
    let theirs = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &upstream.socket)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&theirs.stdout).contains("edkey"));
}

#[tokio::test]
async fn two_hundred_signatures_across_a_tpmd_kill_and_restart() {
    let mut env = TestEnv::start().await;
    // Generous for a loaded CI machine: the default (5 s) covers an ordinary restart.
    let agent = Arc::new(AgentProcess::start(&env, &["--tpmd-wait", "20"], &[]));
    let key = generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "ecc-p256", "loop@tpm");
    let message = message(&env);
    let done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (agent, done, key, message) =
            (agent.clone(), done.clone(), key.clone(), message.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            for i in 0..200 {
                let out = agent
                    .command("ssh-keygen")
                    .args(["-Y", "sign", "-n", "file", "-f"])
                    .arg(pub_of(&key))
                    .arg(&message)
                    .output()
                    .unwrap();
                if !out.status.success() {
                    failures.push(format!("{i}: {}", String::from_utf8_lossy(&out.stderr)));
                }
                let _ = std::fs::remove_file(format!("{}.sig", message.display()));
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        })
    };
    while done.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.tpmd.kill();
    // A signature must meet tpmd's absence: restart only once one has (else, on a loaded
    // machine, the restart can fall between two signatures and prove nothing).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !agent.log_text().contains("retrying once") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.restart_tpmd(&[]).await;
    let at_restart = done.load(Ordering::SeqCst);
    let failures = worker.join().unwrap();
    assert!(at_restart < 200, "the loop ended before tpmd came back");
    assert!(
        failures.is_empty(),
        "failed signatures: {failures:?}\n{}",
        agent.log_text()
    );
    assert!(
        agent.log_text().contains("retrying once"),
        "no signature met the restart: {}",
        agent.log_text()
    );
}

/// A TPM key with an auth value, made by tpm-keyctl.
fn tpm_key_with_pin(env: &TestEnv, dir: &Path, name: &str, pin: &str) -> PathBuf {
    let pin_file = env.path(&format!("{name}.pin"));
    std::fs::write(&pin_file, pin).unwrap();
    let path = dir.join(name);
    ok(&env.keyctl(&[
        "generate",
        "-t",
        "ecc-p256",
        "-o",
        &path.to_string_lossy(),
        "-C",
        name,
        "--auth-file",
        &pin_file.to_string_lossy(),
    ]));
    path
}

fn prompts(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("prompts")).unwrap_or_default()
}

#[tokio::test]
async fn key_auth_values_come_from_askpass_once_or_from_set_auth() {
    let env = TestEnv::start().await;
    let askdir = env.path("askpass");
    std::fs::create_dir_all(&askdir).unwrap();
    let script = askpass_script(&askdir, "1234");
    let agent = AgentProcess::start(&env, &[], &[("SSH_ASKPASS", &script.to_string_lossy())]);
    let good = tpm_key_with_pin(&env, &agent.ssh_dir(), "pin-good", "1234");
    let bad = tpm_key_with_pin(&env, &agent.ssh_dir(), "pin-other", "9999");
    let message = message(&env);

    // Asked on first use, then cached.
    for _ in 0..2 {
        let (sign, verify) = sign_and_verify(&agent, &pub_of(&good), &message);
        ok(&sign);
        ok(&verify.unwrap());
    }
    assert_eq!(
        prompts(&askdir).matches("Enter the PIN").count(),
        1,
        "{}",
        prompts(&askdir)
    );

    // A wrong value: a clear failure, one TPM attempt per use, no retry storm.
    let (sign, _) = sign_and_verify(&agent, &pub_of(&bad), &message);
    assert!(!sign.status.success(), "signed with a wrong PIN");
    assert!(
        agent.log_text().contains("wrong auth value (PIN)"),
        "{}",
        agent.log_text()
    );
    assert_eq!(prompts(&askdir).matches("pin-other").count(), 1);
    // The right key still works: the TPM is not locked out.
    let (sign, _) = sign_and_verify(&agent, &pub_of(&good), &message);
    ok(&sign);

    // Headless: no askpass at all, the value given with --set-auth.
    let headless = AgentProcess::start(&env, &[], &[]);
    let key = tpm_key_with_pin(&env, &headless.ssh_dir(), "pin-headless", "4321");
    let (sign, _) = sign_and_verify(&headless, &pub_of(&key), &message);
    assert!(!sign.status.success(), "signed without an auth value");
    assert!(headless.log_text().contains("needs its auth value"));
    let mut set = Command::new(tpmd_tests::binary("tpmd-ssh-agent"))
        .arg("--set-auth")
        .arg(&key)
        .arg("-a")
        .arg(&headless.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    set.stdin.take().unwrap().write_all(b"4321\n").unwrap();
    ok(&set.wait_with_output().unwrap());
    let (sign, verify) = sign_and_verify(&headless, &pub_of(&key), &message);
    ok(&sign);
    ok(&verify.unwrap());
}
