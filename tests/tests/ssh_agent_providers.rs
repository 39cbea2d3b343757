//! What tpmd-ssh-agent passes on or loads for keys it cannot wrap, with real OpenSSH:
//!
//! - `ssh-add -s` of a softhsm2 token: refused for a provider outside the allowlist
//!   (`-P`), refused over a forwarded connection (CVE-2023-38408) and logged, and with the
//!   default allowlist loaded in a helper process: listed, signing for ssh, removed with
//!   `ssh-add -e`. (OpenSSH's regress agent-pkcs11.sh runs in ssh_agent_regress.rs too.)
//! - Certificates of keys held by the upstream agent: `ssh-add` of an Ed25519 key with
//!   its certificate goes to OpenSSH's ssh-agent upstream, the certificate is listed
//!   through this agent, and sshd that trusts only the CA accepts it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tpmd_tests::ssh::{login_user, start_openssh_agent, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, run};
use tpmd_tests::TestEnv;

const SOFTHSM: &str = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so";
const PIN: &str = "1234";

/// A softhsm2 token holding one EC P-256 key; returns its configuration file and the
/// key's OpenSSH public key.
fn softhsm_token(dir: &Path) -> (PathBuf, String) {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            tokens.display()
        ),
    )
    .unwrap();
    let softhsm = |args: &[&str]| {
        let out = Command::new("softhsm2-util")
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        ok(&out)
    };
    softhsm(&[
        "--init-token",
        "--free",
        "--label",
        "tok",
        "--pin",
        PIN,
        "--so-pin",
        "12345678",
    ]);
    let key = dir.join("ec.pem");
    run(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key.to_string_lossy(),
        ],
    );
    let pkcs8 = dir.join("ec.p8");
    run(
        "openssl",
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &key.to_string_lossy(),
            "-out",
            &pkcs8.to_string_lossy(),
        ],
    );
    softhsm(&[
        "--import",
        &pkcs8.to_string_lossy(),
        "--token",
        "tok",
        "--label",
        "ec",
        "--id",
        "01",
        "--pin",
        PIN,
    ]);
    run("chmod", &["600", &key.to_string_lossy()]);
    let public = ok(&Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap());
    (conf, public.trim().to_string())
}

/// `ssh-add -s/-e PROVIDER` with the PIN on stdin and no terminal (setsid), as
/// OpenSSH's regress test runs it.
fn ssh_add_provider(agent: &AgentProcess, flag: &str, provider: &str) -> Output {
    let mut child = Command::new("setsid")
        .args(["-w", "ssh-add", flag, provider])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .env_remove("SSH_ASKPASS")
        .env_remove("DISPLAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PIN}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn key_part(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn pkcs11_providers_load_in_a_helper_from_the_allowlist_only() {
    let env = TestEnv::start().await;
    let dir = env.path("hsm");
    let (conf, public) = softhsm_token(&dir);
    let conf_s = conf.to_string_lossy().into_owned();
    let vars = [("SOFTHSM2_CONF", conf_s.as_str())];

    // Outside the allowlist: refused, the provider never loaded.
    let strict = AgentProcess::start(&env, &["-P", "/opt/tokens/*"], &vars);
    let out = ssh_add_provider(&strict, "-s", SOFTHSM);
    assert!(
        !out.status.success(),
        "a provider outside the allowlist was loaded"
    );
    assert!(
        strict
            .log_text()
            .contains("is not allowed: it does not match \"/opt/tokens/*\""),
        "{}",
        strict.log_text()
    );
    let listed = strict.ssh_add(&["-L"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&key_part(&public)));

    // The default allowlist (/usr/lib*/*): loaded, listed, used by ssh, removed.
    let agent = AgentProcess::start(&env, &[], &vars);
    let out = ssh_add_provider(&agent, "-s", SOFTHSM);
    assert!(
        out.status.success(),
        "ssh-add -s failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );
    let listed = ok(&agent.ssh_add(&["-L"]));
    assert!(
        listed.contains(&key_part(&public)),
        "{listed}\n{}",
        agent.log_text()
    );
    let sshd = Sshd::start("ecdsa-sha2-nistp256", &format!("{public}\n"));
    let out = sshd.ssh_true(&agent, &[]);
    assert!(
        out.status.success(),
        "ssh with the token's key failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );

    // From a forwarded connection: refused, and logged as such.
    let remote = format!("echo {PIN} | setsid -w ssh-add -s {SOFTHSM}");
    let out = sshd.ssh(&agent, &["ForwardAgent=yes"], &remote);
    assert!(
        !out.status.success(),
        "a forwarded connection loaded a provider"
    );
    assert!(
        agent
            .log_text()
            .contains("refused to load PKCS#11 providers for a connection forwarded"),
        "{}",
        agent.log_text()
    );

    ok(&ssh_add_provider(&agent, "-e", SOFTHSM));
    let listed = agent.ssh_add(&["-L"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&key_part(&public)));
}

#[tokio::test]
async fn certificates_of_keys_held_upstream_are_listed_and_log_in() {
    let env = TestEnv::start().await;
    let upstream = start_openssh_agent(env.dir.path());
    let agent = AgentProcess::start(
        &env,
        &["--upstream", &upstream.socket.to_string_lossy()],
        &[],
    );
    let dir = env.path("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, key) = (dir.join("ca"), dir.join("user"));
    for path in [&ca, &key] {
        run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "",
                "-f",
                &path.to_string_lossy(),
            ],
        );
    }
    // Valid forever, as ssh-keygen makes them by default.
    let user = login_user();
    run(
        "ssh-keygen",
        &[
            "-q",
            "-s",
            &ca.to_string_lossy(),
            "-I",
            "user-cert",
            "-n",
            &user,
            &format!("{}.pub", key.display()),
        ],
    );
    // ssh-add adds the key and, beside it, its certificate: both go upstream.
    ok(&agent.ssh_add(&[&key.to_string_lossy()]));
    std::fs::remove_file(&key).unwrap();
    let theirs = ok(&Command::new("ssh-add")
        .arg("-L")
        .env("SSH_AUTH_SOCK", &upstream.socket)
        .output()
        .unwrap());
    assert!(
        theirs.contains("ssh-ed25519-cert-v01@openssh.com"),
        "{theirs}"
    );
    let ours = ok(&agent.ssh_add(&["-L"]));
    assert!(ours.contains("ssh-ed25519-cert-v01@openssh.com"), "{ours}");

    // sshd trusts the CA only: the login needs the certificate, signed for upstream.
    let ca_pub = std::fs::read_to_string(format!("{}.pub", ca.display())).unwrap();
    let sshd = Sshd::start(
        "ssh-ed25519-cert-v01@openssh.com",
        &format!("cert-authority {ca_pub}"),
    );
    let out = sshd.ssh_true(&agent, &[]);
    assert!(
        out.status.success(),
        "login with the upstream certificate failed: {}\nsshd: {}\nagent: {}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log_text(),
        agent.log_text()
    );

    // Deleting the certificate by its public key, through this agent, deletes it upstream.
    let cert_pub = format!("{}-cert.pub", key.display());
    ok(&Command::new("ssh-add")
        .args(["-d", "-"])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .stdin(std::fs::File::open(&cert_pub).unwrap())
        .output()
        .unwrap());
    let listed = agent.ssh_add(&["-L"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("cert-v01"));
}
