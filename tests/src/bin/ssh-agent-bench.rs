//! Signing throughput and latency through tpmd-ssh-agent's socket (1 and 16 clients), for
//! RSA-2048 and ECDSA P-256, as ratios to the raw TPM (tss-esapi TPM2_Sign, password
//! session, key loaded once) on the same simulator in the same run. The agent reaches
//! tpmd both ways in the same run: through the bus (dbus-daemon) and peer to peer on
//! tpmd's socket. Beside them: tpmd's D-Bus API called directly both ways and, when
//! `--peer` is given and tpm2-pkcs11 is usable, OpenSSH's ssh-agent holding a
//! tpm2-pkcs11 key (`ssh-add -s`).
//!
//! The rows take turns: in each of `--rounds` rounds tpmd stops, the floor signs its
//! share, tpmd starts again and every tpmd row signs its share, so that the simulator's
//! drift over the run (±15 % and more on a busy machine) hits the floor and the rows
//! alike. The agents and clients reconnect to each new tpmd as they would in use.
//!
//!   cargo build --release -p tpmd -p tpm-keyctl -p tpmd-ssh-agent -p tpmd-tests
//!   target/release/ssh-agent-bench [--ops N] [--rounds R] [--peer]
//!
//! Not a test: it asserts nothing about time; it prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tpmd_tests::bench::{
    ops_arg, raw_tpm2_samples, usize_arg, RawScheme, RawSession, Samples, Stats, Table,
};

use sha2::{Digest as _, Sha256};
use tpmd_api::client::connection::connect_socket;
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::Daemon1Proxy;
use tpmd_simulator::Simulator;
use tpmd_tests::ssh::AgentProcess;
use tpmd_tests::TestEnv;

/// One key type measured end to end.
#[derive(Clone, Copy)]
struct Kind {
    title: &'static str,
    /// tpmd's Generate key type.
    tpmd_type: &'static str,
    /// tpm2_ptool addkey --algorithm.
    ptool_type: &'static str,
    /// SSH agent sign flags (2: rsa-sha2-256).
    flags: u32,
    rsa: bool,
}

const KINDS: [Kind; 2] = [
    Kind {
        title: "RSA-2048 rsa-sha2-256",
        tpmd_type: "rsa2048",
        ptool_type: "rsa2048",
        flags: 2,
        rsa: true,
    },
    Kind {
        title: "ECDSA P-256 ecdsa-sha2-nistp256",
        tpmd_type: "ecc-p256",
        ptool_type: "ecc256",
        flags: 0,
        rsa: false,
    },
];

/// The raw floor for this key type: TPM2_Sign with a password session.
fn raw_floor(sim: &Simulator, key_pem: &[u8], kind: Kind, ops: usize, samples: &mut Samples) {
    let scheme = if kind.rsa {
        RawScheme::RsaPkcs1
    } else {
        RawScheme::Ecdsa
    };
    raw_tpm2_samples(sim, key_pem, ops, RawSession::Password, scheme, samples)
}

/// An SSH agent sign request (SSH_AGENTC_SIGN_REQUEST), framed.
fn sign_request(key_blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
    let mut body = vec![13u8];
    for field in [key_blob, data] {
        body.extend_from_slice(&(field.len() as u32).to_be_bytes());
        body.extend_from_slice(field);
    }
    body.extend_from_slice(&flags.to_be_bytes());
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// One signature through an agent socket; panics unless the answer is a signature.
fn agent_sign(stream: &mut UnixStream, request: &[u8]) {
    stream.write_all(request).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply.first(), Some(&14), "the agent did not sign");
}

/// `clients` threads, each with its own connection, `ops` signatures in all.
fn through_agent(
    socket: &Path,
    key_blob: &[u8],
    flags: u32,
    clients: usize,
    ops: usize,
    samples: &mut Samples,
) {
    let per_client = ops / clients;
    let key_blob = Arc::new(key_blob.to_vec());
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (socket, key_blob) = (socket.to_path_buf(), key_blob.clone());
            std::thread::spawn(move || {
                let mut stream = UnixStream::connect(&socket).unwrap();
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let request =
                        sign_request(&key_blob, format!("session {c} {i}").as_bytes(), flags);
                    let t = Instant::now();
                    agent_sign(&mut stream, &request);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    samples.add(all, start.elapsed());
}

/// tpmd's Sign called directly, one call at a time, on `proxy` (bus or socket).
async fn through_dbus(
    proxy: &Daemon1Proxy<'_>,
    key: &[u8],
    kind: Kind,
    ops: usize,
    samples: &mut Samples,
) {
    let scheme = if kind.rsa {
        scheme::RSA_PKCS1
    } else {
        scheme::ECDSA
    };
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let digest = Sha256::digest(i.to_be_bytes());
        let t = Instant::now();
        proxy
            .sign(key, &[], scheme, "sha256", &digest)
            .await
            .unwrap();
        latencies.push(t.elapsed());
    }
    samples.add(latencies, start.elapsed());
}

/// OpenSSH's ssh-agent with a tpm2-pkcs11 RSA-2048 key, on the simulator (tpmd stopped:
/// swtpm serves one client at a time).
struct Peer {
    abrmd: Child,
    agent: Child,
    socket: PathBuf,
    key_blob: Vec<u8>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        for child in [&mut self.agent, &mut self.abrmd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const TPM2_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";

/// tpm2-tools and tpm2-pkcs11 need a resource manager (they leave objects loaded, and
/// a TPM has three slots): tpm2-abrmd on the test's private bus, in front of the simulator.
fn start_peer(sim: &Simulator, bus_address: &str, dir: &Path, kind: Kind) -> Result<Peer, String> {
    let store = dir.join("tpm2-pkcs11");
    std::fs::create_dir_all(&store).map_err(|e| e.to_string())?;
    let tcti = "tabrmd:bus_type=session";
    let store_path = store.to_string_lossy().into_owned();
    let envs = [
        ("DBUS_SESSION_BUS_ADDRESS", bus_address),
        ("TPM2TOOLS_TCTI", tcti),
        ("TPM2_PKCS11_TCTI", tcti),
        ("TPM2_PKCS11_STORE", store_path.as_str()),
    ];
    let mut abrmd = Command::new("tpm2-abrmd")
        .arg("--session")
        .arg(format!("--tcti={}", sim.transport()))
        .arg("--allow-root")
        .envs(envs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("tpm2-abrmd (apt-get install tpm2-abrmd libtss2-tcti-tabrmd0): {e}")
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = Command::new("tpm2_getcap")
            .arg("properties-fixed")
            .envs(envs)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let _ = abrmd.kill();
            let _ = abrmd.wait();
            return Err("tpm2-abrmd did not come up".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let store_arg = format!("--path={}", store.display());
    let algorithm = format!("--algorithm={}", kind.ptool_type);
    let steps: [&[&str]; 3] = [
        &["init", "--primary-handle=0x81000001", &store_arg],
        &[
            "addtoken",
            "--pid=1",
            "--label=bench",
            "--userpin=1234",
            "--sopin=5678",
            &store_arg,
        ],
        &[
            "addkey",
            "--label=bench",
            "--userpin=1234",
            &algorithm,
            "--key-label=k1",
            &store_arg,
        ],
    ];
    for step in steps {
        let out = Command::new("tpm2_ptool")
            .args(step)
            .envs(envs)
            .output()
            .map_err(|e| format!("tpm2_ptool: {e}"))?;
        if !out.status.success() {
            let _ = abrmd.kill();
            let _ = abrmd.wait();
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "tpm2_ptool {} failed: {}",
                step[0],
                err.lines().last().unwrap_or("")
            ));
        }
    }
    let socket = dir.join("openssh-agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .envs(envs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("ssh-agent: {e}"))?;
    let mut peer = Peer {
        abrmd,
        agent,
        socket,
        key_blob: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&peer.socket).is_err() {
        if Instant::now() > deadline {
            return Err("ssh-agent did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let askpass = dir.join("pin.sh");
    std::fs::write(&askpass, "#!/bin/sh\necho 1234\n").map_err(|e| e.to_string())?;
    Command::new("chmod")
        .arg("755")
        .arg(&askpass)
        .status()
        .map_err(|e| e.to_string())?;
    let out = Command::new("ssh-add")
        .args(["-s", TPM2_PKCS11])
        .env("SSH_AUTH_SOCK", &peer.socket)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ssh-add: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh-add -s failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let listed = Command::new("ssh-add")
        .arg("-L")
        .env("SSH_AUTH_SOCK", &peer.socket)
        .output()
        .map_err(|e| format!("ssh-add: {e}"))?;
    let line = String::from_utf8_lossy(&listed.stdout).into_owned();
    let public = ssh_key::PublicKey::from_openssh(line.lines().next().unwrap_or(""))
        .map_err(|e| format!("ssh-add -L: {e}: {line}"))?;
    peer.key_blob = public.to_bytes().map_err(|e| e.to_string())?;
    Ok(peer)
}

/// What one row measures, in each round.
#[derive(Clone, Copy)]
enum Route {
    Direct { socket: bool },
    Agent { socket: bool, clients: usize },
}

const ROWS: [(&str, Route); 6] = [
    (
        "tpmd Sign via the bus, 1 client",
        Route::Direct { socket: false },
    ),
    (
        "tpmd Sign via the socket, 1 client",
        Route::Direct { socket: true },
    ),
    (
        "tpmd-ssh-agent via the bus, 1 client",
        Route::Agent {
            socket: false,
            clients: 1,
        },
    ),
    (
        "tpmd-ssh-agent via the socket, 1 client",
        Route::Agent {
            socket: true,
            clients: 1,
        },
    ),
    (
        "tpmd-ssh-agent via the bus, 16 clients",
        Route::Agent {
            socket: false,
            clients: 16,
        },
    ),
    (
        "tpmd-ssh-agent via the socket, 16 clients",
        Route::Agent {
            socket: true,
            clients: 16,
        },
    ),
];

/// Measures one key type on a fresh simulator and prints its table.
async fn measure(kind: Kind, ops: usize, rounds: usize, with_peer: bool) {
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("tpmd.sock");
    let socket_arg = socket.to_string_lossy().into_owned();
    let tpmd_args = ["--socket", socket_arg.as_str()];
    let mut env = TestEnv::start_with(&tpmd_args).await;
    let key = env
        .proxy()
        .await
        .generate(kind.tpmd_type, &[], GenerateOptions::default())
        .await
        .unwrap();
    let public = tpmd_api::client::key_file_public(&key)
        .unwrap()
        .to_ssh_public_key("bench")
        .unwrap();
    let blob = public.to_bytes().unwrap();

    // Two agents on the one tpmd: one told to use the bus only, one the socket.
    let agent = |socket: &str| {
        let agent = AgentProcess::start(
            &env,
            &[],
            &[("TPMD_SSH_AGENT_LOG", "warn"), ("TPMD_SOCKET", socket)],
        );
        std::fs::write(agent.ssh_dir().join("bench.tpm"), &key).unwrap();
        agent
    };
    let via_bus = agent("none");
    let via_socket = agent(&socket_arg);
    let bus_proxy = env.proxy().await;

    let per_round = ops / rounds;
    let mut floor = Samples::default();
    let mut rows: Vec<Samples> = ROWS.iter().map(|_| Samples::default()).collect();
    for _ in 0..rounds {
        env.tpmd.stop();
        raw_floor(&env.sim, &key, kind, per_round, &mut floor);
        env.restart_tpmd(&tpmd_args).await;
        // A socket connection ends with its tpmd; the bus connection outlives it.
        let socket_proxy = connect_socket(&socket).await.unwrap();
        let mut unused = Samples::default();
        for (_, path) in ROWS {
            // Warm up: the key is loaded and the agents reconnect to the new tpmd.
            run_row(
                path,
                kind,
                &key,
                &blob,
                [&bus_proxy, &socket_proxy],
                [&via_bus, &via_socket],
                5,
                &mut unused,
            )
            .await;
        }
        for ((_, path), samples) in ROWS.iter().zip(&mut rows) {
            run_row(
                *path,
                kind,
                &key,
                &blob,
                [&bus_proxy, &socket_proxy],
                [&via_bus, &via_socket],
                per_round,
                samples,
            )
            .await;
        }
    }
    drop((via_bus, via_socket, bus_proxy));
    env.tpmd.stop();

    let peer = if with_peer {
        let dir = env.path("peer");
        std::fs::create_dir_all(&dir).unwrap();
        match start_peer(&env.sim, env.bus.address(), &dir, kind) {
            Ok(peer) => {
                let (mut warm, mut one, mut sixteen) = Default::default();
                through_agent(&peer.socket, &peer.key_blob, kind.flags, 1, 10, &mut warm);
                through_agent(&peer.socket, &peer.key_blob, kind.flags, 1, ops, &mut one);
                through_agent(
                    &peer.socket,
                    &peer.key_blob,
                    kind.flags,
                    16,
                    ops,
                    &mut sixteen,
                );
                drop(peer);
                Ok((one.stats(), sixteen.stats()))
            }
            Err(e) => Err(e),
        }
    } else {
        Err("not measured (pass --peer)".to_string())
    };

    let floor = floor.stats();
    println!(
        "{} signatures on swtpm, {ops} per row in {rounds} rounds; ratio = signs/s over the floor's",
        kind.title
    );
    let table = Table::start(46, floor.per_second);
    let row = |name: &str, s: &Stats| table.row(name, s);
    row("raw TPM2_Sign (floor)", &floor);
    for ((name, _), samples) in ROWS.iter().zip(&rows) {
        row(name, &samples.stats());
    }
    match &peer {
        Ok((one, sixteen)) => {
            row("OpenSSH ssh-agent + tpm2-pkcs11, 1 client", one);
            row("OpenSSH ssh-agent + tpm2-pkcs11, 16 clients", sixteen);
        }
        Err(e) => println!("OpenSSH ssh-agent + tpm2-pkcs11: {e}"),
    }
    println!();
}

/// One row's share of a round. `proxies` and `agents`: [through the bus, through the socket].
#[allow(clippy::too_many_arguments)]
async fn run_row(
    path: Route,
    kind: Kind,
    key: &[u8],
    blob: &[u8],
    proxies: [&Daemon1Proxy<'_>; 2],
    agents: [&AgentProcess; 2],
    ops: usize,
    samples: &mut Samples,
) {
    match path {
        Route::Direct { socket } => {
            through_dbus(proxies[usize::from(socket)], key, kind, ops, samples).await
        }
        Route::Agent { socket, clients } => through_agent(
            &agents[usize::from(socket)].socket,
            blob,
            kind.flags,
            clients,
            ops,
            samples,
        ),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ops: usize = ops_arg(400);
    let rounds = usize_arg("--rounds", 4).max(1);
    let with_peer = args.iter().any(|a| a == "--peer");
    for kind in KINDS {
        measure(kind, ops, rounds, with_peer).await;
    }
}
