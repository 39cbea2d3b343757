//! tpmd's own socket (org.tpmd.Daemon1 peer to peer, no bus daemon between): the same
//! answers and the same uid checks as on the bus, the frontends (tpm-keyctl,
//! tpmd-ssh-agent, the PKCS#11 module) taking it, tpmd restarts and crashes with the
//! socket in use, stale sockets, a second tpmd, garbage and connection floods.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use tpmd_api::client::connection::{connect_socket, is_peer_to_peer};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::{Daemon1Proxy, DaemonError};
use tpmd_tests::ssh::{generate_tpm_key, sign_and_verify, AgentProcess};
use tpmd_tests::tools::{fails_with, ok};
use tpmd_tests::{binary, PrivateBus, TestEnv, TpmdProcess};

const NO_BUS: &str = "unix:path=/nonexistent/tpmd-test-bus";

/// A directory for tpmd's socket that other users may enter.
fn socket_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("tpmd-sock-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("tpmd.sock");
    (dir, socket)
}

async fn env_with_socket() -> (TestEnv, PathBuf, tempfile::TempDir) {
    let (dir, socket) = socket_dir();
    let env = TestEnv::start_with(&["--socket", &socket.to_string_lossy()]).await;
    (env, socket, dir)
}

/// tpm-keyctl with only tpmd's socket to go to (no bus at all, unless `bus` is given).
fn keyctl_on_socket(socket: &Path, bus: Option<&str>, cwd: &Path, args: &[&str]) -> Output {
    Command::new(binary("tpm-keyctl"))
        .args(args)
        .env("TPMD_SOCKET", socket)
        .env("TPMD_BUS_ADDRESS", bus.unwrap_or(NO_BUS))
        .env("DBUS_SYSTEM_BUS_ADDRESS", NO_BUS)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn verify_p256(spki: &[u8], digest: &[u8], signature: &[u8]) {
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(signature).unwrap();
    key.verify_prehash(digest, &signature).unwrap();
}

async fn sign_p256(proxy: &Daemon1Proxy<'_>, key: &[u8], digest: &[u8]) -> Vec<u8> {
    tpmd_tests::calls::sign(proxy, key, &[], scheme::ECDSA, "sha256", digest)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_on_the_socket_gets_the_same_answers_as_on_the_bus() {
    let (env, socket, _dir) = env_with_socket().await;
    let p2p = connect_socket(&socket).await.unwrap();
    let bus = env.proxy().await;
    assert!(is_peer_to_peer(&p2p));
    assert!(!is_peer_to_peer(&bus));

    let (mut info_p2p, mut info_bus) =
        (p2p.get_info().await.unwrap(), bus.get_info().await.unwrap());
    info_p2p.counters = None;
    info_bus.counters = None;
    assert_eq!(info_p2p, info_bus);

    let key = p2p
        .generate("ecc-p256", &[], GenerateOptions::default())
        .await
        .unwrap();
    let spki = p2p.public_key(&key).await.unwrap();
    assert_eq!(spki, bus.public_key(&key).await.unwrap());
    let digest = Sha256::digest(b"the same key both ways");
    verify_p256(&spki, &digest, &sign_p256(&p2p, &key, &digest).await);
    verify_p256(&spki, &digest, &sign_p256(&bus, &key, &digest).await);

    // Refusals are the same errors with the same words.
    let refused = |e: DaemonError| (format!("{e:?}"), e.message());
    let p2p_error =
        tpmd_tests::calls::sign(&p2p, b"not a key", &[], scheme::ECDSA, "sha256", &digest)
            .await
            .unwrap_err();
    let bus_error =
        tpmd_tests::calls::sign(&bus, b"not a key", &[], scheme::ECDSA, "sha256", &digest)
            .await
            .unwrap_err();
    assert!(
        matches!(p2p_error, DaemonError::BadKeyFile(_)),
        "{p2p_error:?}"
    );
    assert_eq!(refused(p2p_error), refused(bus_error));
    let p2p_error = tpmd_tests::calls::sign(&p2p, &key, &[], "rot13", "sha256", &digest)
        .await
        .unwrap_err();
    let bus_error = tpmd_tests::calls::sign(&bus, &key, &[], "rot13", "sha256", &digest)
        .await
        .unwrap_err();
    assert_eq!(refused(p2p_error), refused(bus_error));

    // libdbus as a client of the socket (zbus is the client above).
    let out = Command::new("dbus-send")
        .arg(format!("--peer=unix:path={}", socket.display()))
        .args([
            "--print-reply",
            "/org/tpmd/Daemon1",
            "org.tpmd.Daemon1.GetCounters",
        ])
        .output()
        .unwrap();
    assert!(ok(&out).contains("\"requests\""), "{}", ok(&out));

    // Both ways reach one tpmd: the key the socket loaded is a hit for the bus.
    let counters = bus.get_counters().await.unwrap();
    assert_eq!(counters.loads, Some(1), "{counters:?}");
    assert!(counters.hits >= Some(1), "{counters:?}");
}

#[tokio::test]
async fn many_clients_at_once_on_the_socket() {
    let (env, socket, _dir) = env_with_socket().await;
    let key = env
        .proxy()
        .await
        .generate("ecc-p256", &[], GenerateOptions::default())
        .await
        .unwrap();
    let spki = env.proxy().await.public_key(&key).await.unwrap();
    let clients: Vec<_> = (0..16u8)
        .map(|c| {
            let (socket, key, spki) = (socket.clone(), key.clone(), spki.clone());
            tokio::spawn(async move {
                let proxy = connect_socket(&socket).await.unwrap();
                for i in 0..5u8 {
                    let digest = Sha256::digest([c, i]);
                    verify_p256(&spki, &digest, &sign_p256(&proxy, &key, &digest).await);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}

/// A system user made for one test and removed after it, even if the test fails.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn create(name: &str) -> TestUser {
        let _ = Command::new("userdel").arg(name).output();
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let user = nix::unistd::User::from_name(name).unwrap().unwrap();
        TestUser {
            name: name.to_string(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }

    /// `program` run as this user, with no supplementary groups.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(program)
            .current_dir("/")
            .env("HOME", "/")
            .stdin(Stdio::null());
        command
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

#[tokio::test]
async fn the_uid_checks_give_the_same_answers_on_the_socket_and_on_the_bus() {
    assert!(
        nix::unistd::getuid().is_root(),
        "this test creates a user and runs a client as that user: run the suite as root"
    );
    let user = TestUser::create(&format!("tpmdp2p{}", std::process::id() % 100_000));
    let sim = tpmd_simulator::Simulator::start_temporary().unwrap();
    let bus = PrivateBus::start_for_all_users().unwrap();
    let (dir, socket) = socket_dir();
    let _tpmd = TpmdProcess::start(
        &bus,
        &sim.transport().to_string(),
        &["--socket", &socket.to_string_lossy()],
        dir.path().join("tpmd.log"),
    )
    .await
    .unwrap();

    let keyctl_as_user = |via_socket: bool, args: &[&str]| {
        let mut command = user.command(&binary("tpm-keyctl"));
        command.args(args);
        if via_socket {
            // No bus to fall back to: an answer can only have come through the socket.
            command
                .env("TPMD_SOCKET", &socket)
                .env("TPMD_BUS_ADDRESS", NO_BUS);
        } else {
            command
                .env("TPMD_SOCKET", "none")
                .env("TPMD_BUS_ADDRESS", bus.address());
        }
        command.output().unwrap()
    };
    for args in [&["srk", "create"][..], &["reset-lockout"], &["lock-nv"]] {
        let on_socket = keyctl_as_user(true, args);
        let on_bus = keyctl_as_user(false, args);
        fails_with(
            &on_socket,
            &format!("run it as root (you are uid {})", user.uid),
        );
        assert_eq!(
            String::from_utf8_lossy(&on_socket.stderr),
            String::from_utf8_lossy(&on_bus.stderr),
            "{args:?}"
        );
    }
    // What any user may do, the user may do either way.
    let info_socket = ok(&keyctl_as_user(true, &["--json", "info"]));
    let info_bus = ok(&keyctl_as_user(false, &["--json", "info"]));
    let family =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["family"].clone();
    assert_eq!(family(&info_socket), "2.0");
    assert_eq!(family(&info_socket), family(&info_bus));
    // Root may.
    let created = ok(&keyctl_on_socket(
        &socket,
        None,
        dir.path(),
        &["srk", "create"],
    ));
    assert!(created.contains("already exists"), "{created}");
}

#[tokio::test]
async fn tpm_keyctl_and_the_ssh_agent_take_the_socket() {
    let (env, socket, _dir) = env_with_socket().await;
    let cwd = env.dir.path();
    ok(&keyctl_on_socket(
        &socket,
        None,
        cwd,
        &["generate", "-t", "ecc-p256", "-o", "k.tpm"],
    ));
    std::fs::write(env.path("m"), "message").unwrap();
    ok(&keyctl_on_socket(
        &socket,
        None,
        cwd,
        &["sign", "-k", "k.tpm", "-i", "m", "-o", "m.sig"],
    ));
    // Without the socket there is nothing to reach: the answers above came through it.
    let no_socket = keyctl_on_socket(Path::new("none"), None, cwd, &["info"]);
    assert!(
        !no_socket.status.success(),
        "reached tpmd without socket or bus"
    );

    let socket_var = socket.to_string_lossy().into_owned();
    let agent = AgentProcess::start(
        &env,
        &[],
        &[("TPMD_SOCKET", &socket_var), ("TPMD_BUS_ADDRESS", NO_BUS)],
    );
    let key = generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "ecc-p256", "p2p@tpm");
    assert!(ok(&agent.ssh_add(&["-l"])).contains("p2p@tpm"));
    let message = agent.home.join("message");
    std::fs::write(&message, "signed through the socket").unwrap();
    let (sign, verify) = sign_and_verify(
        &agent,
        &PathBuf::from(format!("{}.pub", key.display())),
        &message,
    );
    ok(&sign);
    ok(&verify.unwrap());
}

#[tokio::test]
async fn the_pkcs11_module_takes_the_socket() {
    let (env, socket, _dir) = env_with_socket().await;
    let home = env.path("home");
    let store = home.join(".local/share/tpmd/keys");
    std::fs::create_dir_all(&store).unwrap();
    let key = env
        .proxy()
        .await
        .generate("ecc-p256", &[], GenerateOptions::default())
        .await
        .unwrap();
    std::fs::write(store.join("p2p.tpm"), &key).unwrap();
    let spki = env.proxy().await.public_key(&key).await.unwrap();
    let message = b"signed by the module through the socket";
    std::fs::write(env.path("message"), message).unwrap();
    let module = tpmd_tests::pkcs11::module_path();
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&module)
        .args(["--sign", "--mechanism", "ECDSA-SHA256", "--label", "p2p"])
        .args(["-i", "message", "-o", "signature"])
        .current_dir(env.dir.path())
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("TPMD_SOCKET", &socket)
        .env("TPMD_BUS_ADDRESS", NO_BUS)
        .env_remove("TPMD_PKCS11_KEYS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&out);
    let signature = std::fs::read(env.path("signature")).unwrap();
    verify_p256(&spki, &Sha256::digest(message), &signature);
}

#[tokio::test]
async fn the_agent_follows_tpmd_through_a_restart_and_a_crash() {
    let (mut env, socket, dir) = env_with_socket().await;
    let socket_var = socket.to_string_lossy().into_owned();
    // The agent's bus is where the first tpmd is; the later ones are on another bus, so
    // only the socket leads to them.
    let bus_address = env.bus.address().to_string();
    let agent = AgentProcess::start(
        &env,
        &[],
        &[
            ("TPMD_SOCKET", &socket_var),
            ("TPMD_BUS_ADDRESS", &bus_address),
        ],
    );
    let key = generate_tpm_key(&env, &agent.ssh_dir(), "id.tpm", "ecc-p256", "restart@tpm");
    let pubkey = PathBuf::from(format!("{}.pub", key.display()));
    let message = agent.home.join("message");
    std::fs::write(&message, "before, between and after").unwrap();
    let signs = |what: &str| {
        let (sign, verify) = sign_and_verify(&agent, &pubkey, &message);
        assert!(
            sign.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&sign.stderr)
        );
        ok(&verify.unwrap());
    };
    signs("first tpmd");

    let transport = env.sim.transport().to_string();
    let other_bus = PrivateBus::start().unwrap();
    let socket_args = ["--socket", socket_var.as_str()];
    let start_tpmd =
        |log: &str| TpmdProcess::start(&other_bus, &transport, &socket_args, dir.path().join(log));
    // A clean restart: the socket file goes with the old tpmd and comes with the new.
    env.tpmd.stop();
    assert!(
        !socket.exists(),
        "tpmd left its socket behind on a clean stop"
    );
    let mut second = start_tpmd("second.log").await.unwrap();
    signs("after a restart on another bus");

    // A crash: the socket file stays (stale), a request arrives while nobody serves, and
    // the next tpmd starts anyway and answers it.
    second.kill();
    assert!(socket.exists(), "SIGKILL cannot remove the socket");
    let waiting = agent
        .command("ssh-keygen")
        .args(["-Y", "sign", "-n", "file", "-f"])
        .arg(&pubkey)
        .arg(&message)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = start_tpmd("third.log").await.unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "signature across the crash: {} / agent: {}",
        String::from_utf8_lossy(&out.stderr),
        agent.log_text()
    );
    assert!(
        third.log_text().contains("removed a stale socket"),
        "{}",
        third.log_text()
    );
    signs("after the crash");
}

#[tokio::test]
async fn a_second_tpmd_never_takes_a_served_socket() {
    let (env, socket, dir) = env_with_socket().await;
    let socket_arg = socket.to_string_lossy().into_owned();
    let other_bus = PrivateBus::start().unwrap();
    let second = TpmdProcess::start(
        &other_bus,
        &env.sim.transport().to_string(),
        &["--socket", &socket_arg],
        dir.path().join("second.log"),
    )
    .await;
    let error = match second {
        Ok(_) => panic!("a second tpmd started on a served socket"),
        Err(e) => e,
    };
    assert!(error.contains("another tpmd is serving"), "{error}");
    ok(&keyctl_on_socket(&socket, None, env.dir.path(), &["info"]));

    // Something that is not a socket is never removed.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "precious").unwrap();
    let refused = Command::new(binary("tpmd"))
        .args([
            "--address",
            other_bus.address(),
            "--tpm",
            "swtpm:host=127.0.0.1,port=1",
        ])
        .arg("--socket")
        .arg(&file)
        .output()
        .unwrap();
    fails_with(&refused, "exists and is not a socket");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
}

/// Opens a connection and sends `bytes` (nothing if empty), keeping it open.
fn raw(socket: &Path, bytes: &[u8]) -> UnixStream {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

fn authenticated(socket: &Path) -> UnixStream {
    let mut stream = raw(socket, b"\0AUTH EXTERNAL 30\r\n");
    let mut ok_line = [0u8; 37];
    stream.read_exact(&mut ok_line).unwrap();
    assert!(
        ok_line.starts_with(b"OK "),
        "{:?}",
        String::from_utf8_lossy(&ok_line)
    );
    stream.write_all(b"BEGIN\r\n").unwrap();
    stream
}

/// Whether tpmd closed the connection (read gives EOF or a reset), within a few seconds.
fn closed_by_tpmd(mut stream: UnixStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn garbage_and_silence_on_the_socket_hurt_nobody() {
    let (env, socket, _dir) = env_with_socket().await;
    let key = env
        .proxy()
        .await
        .generate("ecc-p256", &[], GenerateOptions::default())
        .await
        .unwrap();
    let spki = env.proxy().await.public_key(&key).await.unwrap();

    let silent = raw(&socket, b"");
    let half_line = raw(&socket, b"\0AUTH EXTERNAL 3");
    let no_nul = raw(&socket, b"GET / HTTP/1.0\r\n\r\n");
    let bare_newline = raw(&socket, b"\0\n\n\n\r\n");
    let endless_line = raw(&socket, &[&b"\0"[..], &[b'A'; 4096]].concat());
    let mut junk_message = authenticated(&socket);
    junk_message.write_all(&[0xff; 64]).unwrap();
    // A header announcing a 100 MiB body: refused before tpmd sets memory aside.
    let mut huge = authenticated(&socket);
    let mut header = vec![b'l', 1, 0, 1];
    header.extend_from_slice(&(100u32 << 20).to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&8u32.to_le_bytes());
    huge.write_all(&header).unwrap();
    let mut truncated = authenticated(&socket);
    truncated.write_all(&header[..10]).unwrap();

    // Meanwhile an honest client is served, while the silent ones still hang on.
    let proxy = connect_socket(&socket).await.unwrap();
    let digest = Sha256::digest(b"honest");
    verify_p256(&spki, &digest, &sign_p256(&proxy, &key, &digest).await);

    for (name, stream) in [
        ("no NUL", no_nul),
        ("bare newlines", bare_newline),
        ("a line without end", endless_line),
        ("junk after BEGIN", junk_message),
        ("a 100 MiB message", huge),
    ] {
        assert!(closed_by_tpmd(stream), "{name}: still open");
    }
    // Silence ends at the handshake deadline; a silent authenticated client is a client.
    assert!(closed_by_tpmd(silent), "a silent client is never dropped");
    assert!(closed_by_tpmd(half_line), "a half line is never dropped");
    drop(truncated);

    let digest = Sha256::digest(b"still honest");
    verify_p256(&spki, &digest, &sign_p256(&proxy, &key, &digest).await);
    let fresh = connect_socket(&socket).await.unwrap();
    verify_p256(&spki, &digest, &sign_p256(&fresh, &key, &digest).await);
    ok(&env.keyctl(&["info"]));
}

#[tokio::test]
async fn a_flood_of_connections_leaves_the_bus_and_frees_up() {
    let (env, socket, _dir) = env_with_socket().await;
    let cwd = env.dir.path();
    // One uid holds 64 connections at most; these say nothing and keep them.
    let flood: Vec<_> = (0..64).map(|_| raw(&socket, b"")).collect();
    // Give tpmd the time to accept them all before the next one arrives.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let out = keyctl_on_socket(&socket, None, cwd, &["info"]);
        if !out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "a 65th connection was served");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        env.tpmd.log_text().contains("too many open connections"),
        "{}",
        env.tpmd.log_text()
    );
    // The refused client falls back to the bus.
    ok(&keyctl_on_socket(
        &socket,
        Some(env.bus.address()),
        cwd,
        &["info"],
    ));
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !keyctl_on_socket(&socket, None, cwd, &["info"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the places were not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn tpmd_user_serves_a_private_socket_in_the_runtime_directory() {
    let sim = tpmd_simulator::Simulator::start_temporary().unwrap();
    let bus = PrivateBus::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = std::fs::File::create(dir.path().join("tpmd.log")).unwrap();
    let mut tpmd = Command::new(binary("tpmd"))
        .args(["--user", "--tpm", &sim.transport().to_string()])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("TPMD_SOCKET")
        .env_remove("TPMD_BUS_ADDRESS")
        .stderr(log)
        .spawn()
        .unwrap();
    let socket = runtime.join("tpmd").join("tpmd.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "no {}", socket.display());
        assert!(tpmd.try_wait().unwrap().is_none(), "tpmd exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&runtime.join("tpmd")), 0o700);
    assert_eq!(mode(&socket), 0o600);
    let out = Command::new(binary("tpm-keyctl"))
        .args(["--user", "info"])
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS)
        .env_remove("TPMD_SOCKET")
        .env_remove("TPMD_BUS_ADDRESS")
        .output()
        .unwrap();
    assert!(ok(&out).contains("TPM family"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tpmd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(tpmd.wait().unwrap().success());
    assert!(!socket.exists(), "the socket outlived tpmd");
}
