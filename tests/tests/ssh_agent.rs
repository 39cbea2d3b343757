//! tpmd-ssh-agent with the real OpenSSH tools: ssh-add -l/-L, ssh into sshd on
//! 127.0.0.1 for each key type (rsa-sha2-256 and rsa-sha2-512 forced in turn),
//! ssh-keygen -Y sign/verify, ssh-add of software keys (wrapped into the TPM on the fly),
//! socket permissions and garbage on the socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use tpmd_tests::ssh::{generate_tpm_key, sign_and_verify, AgentProcess, Sshd};
use tpmd_tests::tools::{ok, run};
use tpmd_tests::TestEnv;

fn read_pub(key: &Path) -> String {
    std::fs::read_to_string(format!("{}.pub", key.display())).unwrap()
}

/// The key part ("type base64") of an OpenSSH public key line.
fn key_part(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn serves_tpm_key_files_to_ssh_add_ssh_and_ssh_keygen() {
    let env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    // The socket is private: 0600 in a 0700 directory.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&agent.socket), 0o600);
    assert_eq!(mode(agent.socket.parent().unwrap()), 0o700);
    assert!(
        String::from_utf8_lossy(&agent.ssh_add(&["-l"]).stdout).contains("no identities"),
        "an empty ~/.ssh serves nothing"
    );

    // Keys appear in ~/.ssh while the agent runs: it finds them without a restart.
    let ssh = agent.ssh_dir();
    let keys = [
        generate_tpm_key(&env, &ssh, "id_rsa.tpm", "rsa2048", "rsa@tpm"),
        generate_tpm_key(&env, &ssh, "id_p256.tpm", "ecc-p256", "p256@tpm"),
        generate_tpm_key(&env, &ssh, "id_p384.tpm", "ecc-p384", "p384@tpm"),
    ];
    let listed = ok(&agent.ssh_add(&["-l"]));
    for (comment, kind) in [
        ("rsa@tpm", "(RSA)"),
        ("p256@tpm", "(ECDSA)"),
        ("p384@tpm", "(ECDSA)"),
    ] {
        assert!(
            listed
                .lines()
                .any(|l| l.contains(comment) && l.ends_with(kind)),
            "{comment} missing from ssh-add -l: {listed}"
        );
    }
    let public = ok(&agent.ssh_add(&["-L"]));
    for key in &keys {
        let want = key_part(&read_pub(key));
        assert!(
            public.lines().any(|l| key_part(l) == want),
            "ssh-add -L lacks {want}: {public}"
        );
    }

    // ssh into sshd, once per key and signature algorithm, the server accepting only that one.
    let cases = [
        (&keys[0], "rsa-sha2-256"),
        (&keys[0], "rsa-sha2-512"),
        // Plain SHA-1 ssh-rsa, only because both ends ask for it.
        (&keys[0], "ssh-rsa"),
        (&keys[1], "ecdsa-sha2-nistp256"),
        (&keys[2], "ecdsa-sha2-nistp384"),
    ];
    for (key, algorithm) in cases {
        let sshd = Sshd::start(algorithm, &read_pub(key));
        // The client picks from what the server announces, so it is held to it as well.
        let out = sshd.ssh_true(&agent, &[&format!("PubkeyAcceptedAlgorithms={algorithm}")]);
        assert!(
            out.status.success(),
            "ssh with {algorithm} failed: {}\nsshd: {}\nagent: {}",
            String::from_utf8_lossy(&out.stderr),
            sshd.log_text(),
            agent.log_text()
        );
        assert!(
            sshd.log_text().contains("Accepted publickey"),
            "{}",
            sshd.log_text()
        );
        assert!(
            agent
                .log_text()
                .contains(&format!("signing with {algorithm}")),
            "the agent did not make the {algorithm} signature: {}",
            agent.log_text()
        );
    }
    // At start the agent said whether tpmd answers.
    assert!(
        agent.log_text().contains("tpmd answers: TPM 2.0"),
        "{}",
        agent.log_text()
    );
    // ssh bound each connection to the server's host key (session-bind@openssh.com).
    assert!(
        agent.log_text().contains("bound to host key"),
        "{}",
        agent.log_text()
    );
    // A key sshd does not know is refused: the test above is not vacuous.
    let sshd = Sshd::start("rsa-sha2-256", &read_pub(&keys[1]));
    let out = sshd.ssh_true(&agent, &[]);
    assert!(!out.status.success(), "sshd accepted an unlisted key");

    // ssh-keygen -Y sign through the agent, -Y verify without it.
    let message = env.path("message.txt");
    std::fs::write(&message, b"signed by a TPM key through tpmd-ssh-agent\n").unwrap();
    for key in &keys {
        let pubkey = format!("{}.pub", key.display());
        let (sign, verify) = sign_and_verify(&agent, Path::new(&pubkey), &message);
        ok(&sign);
        ok(&verify.unwrap());
    }
}

#[tokio::test]
async fn ssh_add_wraps_software_keys_into_the_tpm() {
    let mut env = TestEnv::start().await;
    let saved = env.path("wrapped");
    let agent = AgentProcess::start(&env, &["--save-wrapped", &saved.to_string_lossy()], &[]);
    let dir = env.path("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let mut added = Vec::new();
    for (name, args) in [
        ("id_rsa", ["-t", "rsa", "-b", "2048"]),
        ("id_ecdsa", ["-t", "ecdsa", "-b", "256"]),
        ("id_ecdsa384", ["-t", "ecdsa", "-b", "384"]),
    ] {
        let path = dir.join(name);
        let p = path.to_string_lossy().into_owned();
        let mut full = args.to_vec();
        full.extend(["-q", "-N", "", "-C", name, "-f", &p]);
        run("ssh-keygen", &full);
        let out = agent.ssh_add(&[&p]);
        ok(&out);
        added.push(path);
    }
    let listed = ok(&agent.ssh_add(&["-l"]));
    for name in ["id_rsa", "id_ecdsa", "id_ecdsa384"] {
        assert!(listed.contains(name), "{listed}");
    }
    // What the agent kept is a TPM key file, not the private key.
    let mut saved_files = 0;
    for entry in std::fs::read_dir(&saved).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tpm") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("-----BEGIN TSS2 PRIVATE KEY-----"),
                "{text}"
            );
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            saved_files += 1;
        }
    }
    assert_eq!(saved_files, 3);

    let message = env.path("message.txt");
    std::fs::write(&message, b"hello").unwrap();
    let proxy = env.proxy().await;
    let before = proxy.get_counters().await.unwrap().requests.unwrap_or(0);
    for key in &added {
        let pubkey = format!("{}.pub", key.display());
        let (sign, verify) = sign_and_verify(&agent, Path::new(&pubkey), &message);
        ok(&sign);
        ok(&verify.unwrap());
    }
    let after = proxy.get_counters().await.unwrap().requests.unwrap_or(0);
    assert!(
        after >= before + 3,
        "the signatures did not go through tpmd ({before} -> {after})"
    );

    // With tpmd gone the added keys cannot sign: the agent holds only TPM blobs.
    env.tpmd.stop();
    let pubkey = format!("{}.pub", added[0].display());
    let (sign, _) = sign_and_verify(&agent, Path::new(&pubkey), &message);
    assert!(!sign.status.success(), "signed with tpmd stopped");
    assert!(
        agent.log_text().contains("tpmd is not reachable"),
        "{}",
        agent.log_text()
    );
    // Listing still works with tpmd down.
    assert!(ok(&agent.ssh_add(&["-l"])).contains("id_rsa"));
    env.restart_tpmd(&[]).await;
    let (sign, verify) = sign_and_verify(&agent, Path::new(&pubkey), &message);
    ok(&sign);
    ok(&verify.unwrap());

    // Ed25519 cannot live in a TPM and there is no upstream agent: kept in the agent's
    // memory, as ssh-agent keeps keys, and said so (tests/tests/ssh_agent_memory.rs).
    let ed = dir.join("id_ed25519");
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", &ed.to_string_lossy()],
    );
    ok(&agent.ssh_add(&[&ed.to_string_lossy()]));
    assert!(
        agent.log_text().contains(
            "kept in this agent's memory, not in the TPM: Ed25519 keys cannot be held by a TPM"
        ),
        "{}",
        agent.log_text()
    );

    // Remove one, then all.
    ok(&agent.ssh_add(&["-d", &added[0].to_string_lossy()]));
    let listed = ok(&agent.ssh_add(&["-l"]));
    assert!(!listed.contains("id_rsa "), "{listed}");
    assert!(listed.contains("id_ecdsa"), "{listed}");
    ok(&agent.ssh_add(&["-D"]));
    assert!(String::from_utf8_lossy(&agent.ssh_add(&["-l"]).stdout).contains("no identities"));
}

fn exchange(socket: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

const FAILURE: [u8; 5] = [0, 0, 0, 1, 5];

/// An SSH_AGENTC_EXTENSION message, framed.
fn extension(name: &str, details: &[u8]) -> Vec<u8> {
    let mut body = vec![27u8];
    body.extend_from_slice(&(name.len() as u32).to_be_bytes());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(details);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[tokio::test]
async fn query_lists_the_extensions_and_unknown_ones_fail() {
    let env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    let reply = exchange(&agent.socket, &extension("query", &[]));
    // SSH_AGENT_EXTENSION_RESPONSE naming what is supported.
    assert_eq!(reply.get(4), Some(&29), "{reply:?}");
    let text = String::from_utf8_lossy(&reply);
    for name in ["query", "session-bind@openssh.com", "set-auth@tpmd.org"] {
        assert!(text.contains(name), "{text}");
    }
    assert_eq!(
        exchange(&agent.socket, &extension("nonsense@example.com", &[1, 2])),
        FAILURE
    );
    // A session-bind whose signature does not verify is refused.
    assert_eq!(
        exchange(
            &agent.socket,
            &extension("session-bind@openssh.com", &[0, 0, 0, 1, 0])
        ),
        FAILURE
    );
}

#[tokio::test]
async fn garbage_on_the_socket_is_answered_or_dropped_and_the_agent_keeps_serving() {
    let env = TestEnv::start().await;
    let mut agent = AgentProcess::start(&env, &[], &[]);
    generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "ecc-p256", "kept@tpm");

    // Unknown message type, truncated sign request, sign request for an unknown key.
    assert_eq!(exchange(&agent.socket, &[0, 0, 0, 1, 200]), FAILURE);
    assert_eq!(
        exchange(&agent.socket, &[0, 0, 0, 5, 13, 0, 0, 0, 9]),
        FAILURE
    );
    assert_eq!(
        exchange(&agent.socket, &[0, 0, 0, 3, 13, 0xff, 0xff]),
        FAILURE
    );
    // Two requests in one write: each is answered (the frame boundary holds).
    let mut two = vec![0, 0, 0, 1, 200];
    two.extend_from_slice(&[0, 0, 0, 1, 200]);
    let mut want = FAILURE.to_vec();
    want.extend_from_slice(&FAILURE);
    assert_eq!(exchange(&agent.socket, &two), want);
    // Oversized and zero-length messages close the connection without a reply.
    assert_eq!(exchange(&agent.socket, &[0xff, 0xff, 0xff, 0xff, 11]), b"");
    assert_eq!(exchange(&agent.socket, &[0, 0, 0, 0]), b"");
    // A message cut short and random bytes.
    assert_eq!(exchange(&agent.socket, &[0, 0, 0, 50, 11, 1, 2]), b"");
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = exchange(&agent.socket, &noise);

    // Every message type with random bodies: answered or dropped, never a crash.
    let mut seed = 0x2545_f491_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for kind in [11u8, 13, 17, 18, 19, 20, 21, 23, 25, 26, 27, 99, 255] {
        for _ in 0..20 {
            let len = (next() % 300) as usize;
            let mut body = vec![kind];
            body.extend((0..len).map(|_| next() as u8));
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            let reply = exchange(&agent.socket, &frame);
            assert!(
                reply.is_empty() || reply.len() >= 5,
                "a partial reply to type {kind}: {reply:?}"
            );
        }
    }

    // A client that stalls in the middle of a message holds up nobody else.
    let mut stalled = UnixStream::connect(&agent.socket).unwrap();
    stalled.write_all(&[0, 0, 1, 0, 13]).unwrap();
    // (A random "remove all" may have hidden the key file: still a well-formed answer.)
    let out = agent.ssh_add(&["-l"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("kept@tpm") || listed.contains("no identities"),
        "{listed} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(stalled);
    assert!(agent.alive(), "the agent died: {}", agent.log_text());
    assert!(
        agent
            .log_text()
            .contains("malformed or unsupported request"),
        "{}",
        agent.log_text()
    );
}

#[tokio::test]
async fn a_peer_with_another_uid_is_refused() {
    assert!(
        nix::unistd::getuid().is_root(),
        "this test runs a client as another user: run the suite as root"
    );
    let env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "ecc-p256", "mine@tpm");
    // Open the file modes so that only the uid check stands in the way.
    std::fs::set_permissions(&agent.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let dir = agent.socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "ssh-add",
            "-l",
        ])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(!out.status.success(), "another uid was served");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("mine@tpm"),
        "another uid saw the keys"
    );
    assert!(
        agent
            .log_text()
            .contains("refused a connection from uid 65534"),
        "{}",
        agent.log_text()
    );
    assert!(ok(&agent.ssh_add(&["-l"])).contains("mine@tpm"));
}

#[tokio::test]
async fn starts_on_a_socket_passed_by_systemd() {
    let env = TestEnv::start().await;
    let dir = env.path("activated");
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    generate_tpm_key(
        &env,
        &home.join(".ssh"),
        "id.tpm",
        "ecc-p384",
        "activated@tpm",
    );
    let socket = dir.join("agent.sock");
    let mut activator = std::process::Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg("-E")
        .arg(format!("TPMD_BUS_ADDRESS={}", env.bus.address()))
        .arg("-E")
        .arg(format!("HOME={}", home.display()))
        .arg("-E")
        .arg(format!("XDG_CONFIG_HOME={}", dir.join("config").display()))
        .arg(tpmd_tests::binary("tpmd-ssh-agent"))
        .arg("-D")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = std::process::Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let _ = activator.kill();
    let _ = activator.wait();
    assert!(ok(&out).contains("activated@tpm"));
}

#[tokio::test]
async fn without_d_it_detaches_and_prints_the_eval_line() {
    let env = TestEnv::start().await;
    let dir = env.path("detached");
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    generate_tpm_key(
        &env,
        &home.join(".ssh"),
        "id.tpm",
        "ecc-p256",
        "detached@tpm",
    );
    let socket = dir.join("run").join("agent.sock");
    let out = std::process::Command::new(tpmd_tests::binary("tpmd-ssh-agent"))
        .arg("-a")
        .arg(&socket)
        .env("TPMD_BUS_ADDRESS", env.bus.address())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .output()
        .unwrap();
    let printed = ok(&out);
    assert!(
        printed.starts_with(&format!(
            "SSH_AUTH_SOCK={}; export SSH_AUTH_SOCK;",
            socket.display()
        )),
        "{printed}"
    );
    let pid: i32 = printed
        .split("Agent pid ")
        .nth(1)
        .and_then(|s| s.trim().trim_end_matches(';').parse().ok())
        .expect("no pid printed");
    let listed = std::process::Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(ok(&listed).contains("detached@tpm"));
    // SIGTERM removes the socket.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        assert!(std::time::Instant::now() < deadline, "socket left behind");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn offers_the_certificate_beside_a_key_and_logs_in_with_it() {
    let env = TestEnv::start().await;
    let agent = AgentProcess::start(&env, &[], &[]);
    let key = generate_tpm_key(
        &env,
        &agent.ssh_dir(),
        "id_ecdsa.tpm",
        "ecc-p256",
        "certified",
    );
    let ca = env.path("ca");
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", &ca.to_string_lossy()],
    );
    let user = tpmd_tests::ssh::login_user();
    run(
        "ssh-keygen",
        &[
            "-q",
            "-s",
            &ca.to_string_lossy(),
            "-I",
            "test-certificate",
            "-n",
            &user,
            "-V",
            "+1h",
            &format!("{}.pub", key.display()),
        ],
    );
    let listed = ok(&agent.ssh_add(&["-L"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("ecdsa-sha2-nistp256-cert-v01@openssh.com ")),
        "no certificate offered: {listed}\n{}",
        agent.log_text()
    );
    // sshd knows no key, only the CA.
    let algorithm = "ecdsa-sha2-nistp256-cert-v01@openssh.com";
    let sshd = Sshd::start_with(
        algorithm,
        "",
        &format!("TrustedUserCAKeys {}.pub", ca.display()),
    );
    let out = sshd.ssh_true(&agent, &[&format!("PubkeyAcceptedAlgorithms={algorithm}")]);
    assert!(
        out.status.success(),
        "{}\nsshd: {}\nagent: {}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log_text(),
        agent.log_text()
    );
    assert!(sshd.log_text().contains("Accepted publickey"));
}

#[tokio::test]
async fn the_configuration_file_chooses_the_key_directories() {
    let env = TestEnv::start().await;
    let keys = env.path("configured-keys");
    std::fs::create_dir_all(&keys).unwrap();
    generate_tpm_key(&env, &keys, "other.tpm", "ecc-p256", "from-key-dir");
    let config = env.path("agent.conf");
    std::fs::write(
        &config,
        format!(
            "# the test's settings\nkey-dir = {}\nssh-dir = no\nauth-cache = 60\n",
            keys.display()
        ),
    )
    .unwrap();
    let agent = AgentProcess::start(&env, &["--config", &config.to_string_lossy()], &[]);
    generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "ecc-p256", "from-ssh-dir");
    let listed = ok(&agent.ssh_add(&["-l"]));
    assert!(listed.contains("from-key-dir"), "{listed}");
    assert!(
        !listed.contains("from-ssh-dir"),
        "ssh-dir = no ignored: {listed}"
    );

    // A mistake in the file stops the start with one line naming it.
    std::fs::write(&config, "key-dir = /x\ncolour = blue\n").unwrap();
    let out = std::process::Command::new(tpmd_tests::binary("tpmd-ssh-agent"))
        .args(["-D", "-a"])
        .arg(env.path("never.sock"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    tpmd_tests::tools::fails_with(&out, "agent.conf:2: unknown setting \"colour\"");
}

#[test]
fn an_upstream_that_is_the_agent_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let out = std::process::Command::new(tpmd_tests::binary("tpmd-ssh-agent"))
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .arg("--upstream")
        .arg(&socket)
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    tpmd_tests::tools::fails_with(&out, "is this agent's own socket");
}
