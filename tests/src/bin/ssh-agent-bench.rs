//! Signing throughput and latency through tpmd-ssh-agent's socket (1 and 16 clients), for
//! RSA-2048 and ECDSA P-256, keys without and with a PIN, as ratios to the raw TPM
//! (tss-esapi TPM2_Sign, password session, key loaded once) on the same simulator in the
//! same run. The agent reaches tpmd both ways in the same run: through the bus
//! (dbus-daemon) and peer to peer on tpmd's socket. Beside them: tpmd's D-Bus API called
//! directly both ways, the stateless raw pattern (TPM2_Load, TPM2_Sign, TPM2_FlushContext
//! per signature), the first signature after tpmd starts, and with `--peer` OpenSSH's
//! ssh-agent holding a tpm2-pkcs11 key (`ssh-add -s`, same transport, tpmd stopped).
//!
//! The rows take turns: in each of `--rounds` rounds tpmd stops, the raw rows and the
//! OpenSSH peer (a fresh ssh-agent each round) sign their share, tpmd starts again and
//! every tpmd row signs its share, so that the simulator's drift over the run hits the
//! floor and the rows alike. The agents reconnect to each new
//! tpmd as they would in use; their first signature then is the "first after start" row.
//!
//!   cargo build --release -p tpmd -p tpmd-ssh-agent -p tpmd-tests --bin ssh-agent-bench
//!   target/release/ssh-agent-bench [--ops N] [--rounds R] [--peer] [--kernel-rm] [--latency PROFILE]
//!
//! Not a test: it asserts nothing about time; it prints figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tpmd_api::client::connection::connect_socket;
use tpmd_api::dbus::GenerateOptions;
use tpmd_api::Daemon1Proxy;
use tpmd_tests::bench::clients::{agent_set_auth, direct_sign, ssh_key_blob, through_agent};
use tpmd_tests::bench::tpm2_pkcs11::{self, Tpm2Pkcs11};
use tpmd_tests::bench::{
    commands_per_op, flag, ops_arg, paired, reset_counts, usize_arg, Kind, Model, RawKey,
    RawPattern, RawSession, Samples, Table, KINDS, WARM_UP,
};
use tpmd_tests::ssh::AgentProcess;
use tpmd_tests::TestEnv;

/// The PIN of the tpmd key that has one.
const PIN: &str = "4321";

/// What one row measures, in each round.
#[derive(Clone, Copy)]
enum Route {
    Direct { socket: bool },
    Agent { socket: bool, clients: usize },
}

/// (name, route, PIN key).
const ROWS: [(&str, Route, bool); 9] = [
    (
        "tpmd Sign via the bus, 1 client",
        Route::Direct { socket: false },
        false,
    ),
    (
        "tpmd Sign via the socket, 1 client",
        Route::Direct { socket: true },
        false,
    ),
    (
        "tpmd-ssh-agent via the bus, 1 client",
        Route::Agent {
            socket: false,
            clients: 1,
        },
        false,
    ),
    (
        "tpmd-ssh-agent via the socket, 1 client",
        Route::Agent {
            socket: true,
            clients: 1,
        },
        false,
    ),
    (
        "tpmd-ssh-agent via the bus, 16 clients",
        Route::Agent {
            socket: false,
            clients: 16,
        },
        false,
    ),
    (
        "tpmd-ssh-agent via the socket, 16 clients",
        Route::Agent {
            socket: true,
            clients: 16,
        },
        false,
    ),
    (
        "PIN: tpmd Sign via the socket, 1 client",
        Route::Direct { socket: true },
        true,
    ),
    (
        "PIN: tpmd-ssh-agent via the socket, 1 client",
        Route::Agent {
            socket: true,
            clients: 1,
        },
        true,
    ),
    (
        "PIN: tpmd-ssh-agent via the socket, 16 clients",
        Route::Agent {
            socket: true,
            clients: 16,
        },
        true,
    ),
];

/// One tpmd key and what the clients need to name it.
struct BenchKey {
    file: Vec<u8>,
    blob: Vec<u8>,
    auth: &'static [u8],
}

/// Both agents on the one tpmd (`agents`: [through the bus, through the socket]).
struct Fronts<'a> {
    proxies: [&'a Daemon1Proxy<'a>; 2],
    agents: [&'a AgentProcess; 2],
}

impl Fronts<'_> {
    async fn sign(&self, route: Route, kind: Kind, key: &BenchKey, ops: usize, s: &mut Samples) {
        match route {
            Route::Direct { socket } => {
                let proxy = self.proxies[usize::from(socket)];
                direct_sign(proxy, &key.file, key.auth, kind, ops, s).await
            }
            Route::Agent { socket, clients } => {
                let agent = &self.agents[usize::from(socket)].socket;
                through_agent(agent, &key.blob, kind, clients, ops, s)
            }
        }
    }
}

/// Measures one key type on a fresh simulator and prints its table.
async fn measure(model: &Model, kind: Kind, ops: usize, rounds: usize, with_peer: bool) {
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("tpmd.sock");
    let socket_arg = socket.to_string_lossy().into_owned();
    let tpmd_args = ["--socket", socket_arg.as_str()];
    let mut env = TestEnv::start_on(model.start(), &tpmd_args).await;
    let mut keys = Vec::new();
    for auth in [&[][..], PIN.as_bytes()] {
        let file = env
            .proxy()
            .await
            .generate(kind.tpmd_type, auth, GenerateOptions::default())
            .await
            .unwrap();
        let blob = ssh_key_blob(&file);
        keys.push(BenchKey { file, blob, auth });
    }
    let key_for = |pin: bool| &keys[usize::from(pin)];

    // Two agents on the one tpmd: one told to use the bus only, one the socket.
    let agent = |socket: &str| {
        let agent = AgentProcess::start(
            &env,
            &[],
            &[("TPMD_SSH_AGENT_LOG", "warn"), ("TPMD_SOCKET", socket)],
        );
        for (name, key) in [("bench", key_for(false)), ("bench-pin", key_for(true))] {
            let path = agent.ssh_dir().join(format!("{name}.tpm"));
            std::fs::write(&path, &key.file).unwrap();
            if !key.auth.is_empty() {
                agent_set_auth(&agent.socket, &path, PIN);
            }
        }
        agent
    };
    let via_bus = agent("none");
    let via_socket = agent(&socket_arg);
    let bus_proxy = env.proxy().await;

    let via = model.raw_via(&env.sim);
    let raw_keys: Vec<RawKey> = keys
        .iter()
        .map(|key| RawKey {
            via: &via,
            pem: &key.file,
            auth: key.auth,
            scheme: kind.raw_scheme(),
        })
        .collect();
    let raw = |pin: bool| &raw_keys[usize::from(pin)];
    let floor_pattern = RawPattern::Hot(RawSession::Password);
    let per_round = (ops / rounds).max(1);
    let (mut floor, mut pin_floor, mut stateless) = Default::default();
    let (mut first, mut first_pin) = (Samples::default(), Samples::default());
    let mut rows: Vec<Samples> = ROWS.iter().map(|_| Samples::default()).collect();
    let mut commands = vec![String::new(); ROWS.len()];
    let (mut floor_commands, mut stateless_commands) = (String::new(), String::new());
    env.tpmd.stop();
    let mut peer = if with_peer {
        PeerRows::new(model, &env, kind)
    } else {
        Err("not measured (pass --peer)".to_string())
    };
    for _ in 0..rounds {
        env.tpmd.stop();
        reset_counts(&env.sim);
        raw(false).run(floor_pattern, per_round, &mut floor);
        floor_commands = commands_per_op(&env.sim, per_round + WARM_UP);
        raw(true).run(floor_pattern, per_round, &mut pin_floor);
        reset_counts(&env.sim);
        raw(false).run(RawPattern::Stateless, per_round, &mut stateless);
        stateless_commands = commands_per_op(&env.sim, per_round + WARM_UP);
        if let Ok(peer) = &mut peer {
            peer.round(kind, per_round);
        }
        env.restart_tpmd(&tpmd_args).await;
        // A socket connection ends with its tpmd; the bus connection outlives it.
        let socket_proxy = connect_socket(&socket).await.unwrap();
        let fronts = Fronts {
            proxies: [&bus_proxy, &socket_proxy],
            agents: [&via_bus, &via_socket],
        };
        // What a user feels first: the agent reconnects, tpmd loads the key.
        let agent_socket = Route::Agent {
            socket: true,
            clients: 1,
        };
        fronts
            .sign(agent_socket, kind, key_for(false), 1, &mut first)
            .await;
        fronts
            .sign(agent_socket, kind, key_for(true), 1, &mut first_pin)
            .await;
        let mut warm_up = Samples::default();
        for (_, route, pin) in ROWS {
            fronts
                .sign(route, kind, key_for(pin), 2, &mut warm_up)
                .await;
        }
        for (((_, route, pin), samples), commands) in ROWS.iter().zip(&mut rows).zip(&mut commands)
        {
            let before = samples.len();
            reset_counts(&env.sim);
            fronts
                .sign(*route, kind, key_for(*pin), per_round, samples)
                .await;
            *commands = commands_per_op(&env.sim, samples.len() - before);
        }
    }
    drop((via_bus, via_socket, bus_proxy));
    env.tpmd.stop();

    println!(
        "{} signatures on {}, {ops} per row in {rounds} rounds; ratios to the floor: rate = signs/s, p50 = floor's p50 / row's p50",
        kind.title(),
        model.describe()
    );
    let table = Table::start(50, &floor);
    table.row("raw TPM2_Sign (floor)", &floor);
    table.row("raw TPM2_Sign, PIN key, password session", &pin_floor);
    table.row("raw Load + Sign + FlushContext (stateless)", &stateless);
    for ((name, _, _), samples) in ROWS.iter().zip(&rows) {
        table.row(name, samples);
    }
    table.row("first signature after tpmd starts (agent)", &first);
    table.row("PIN: first signature after tpmd starts", &first_pin);
    match &peer {
        Ok(PeerRows { one, sixteen, .. }) => {
            table.row("PIN: OpenSSH ssh-agent + tpm2-pkcs11, 1 client", one);
            table.row("PIN: OpenSSH ssh-agent + tpm2-pkcs11, 16 clients", sixteen);
            println!(
                "like for like (PIN keys, 1 client, same transport): tpmd-ssh-agent / ssh-agent + tpm2-pkcs11 = {:.2}x signs/s, {} by medians paired by round",
                rows[7].stats().per_second / one.stats().per_second,
                paired(&rows[7], one)
            );
        }
        Err(e) => println!("OpenSSH ssh-agent + tpm2-pkcs11: {e}"),
    }
    if model.modelled() {
        println!("TPM commands per signature (last round; the raw rows include their set-up and warm-up):");
        println!("  raw TPM2_Sign (floor): {floor_commands}");
        println!("  raw stateless: {stateless_commands}");
        for ((name, _, _), commands) in ROWS.iter().zip(&commands) {
            println!("  {name}: {commands}");
        }
    }
    println!();
}

/// The OpenSSH peer's rows: its tpm2-pkcs11 token is made once; in each round (tpmd
/// stopped) a fresh ssh-agent with that key (`ssh-agent -D`, `ssh-add -s`) signs its
/// share and exits, so that the peer takes its turns with the other rows.
struct PeerRows {
    dir: PathBuf,
    token: Tpm2Pkcs11,
    one: Samples,
    sixteen: Samples,
}

impl PeerRows {
    fn new(model: &Model, env: &TestEnv, kind: Kind) -> Result<Self, String> {
        let dir = env.path("peer");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let token = Tpm2Pkcs11::create(model, &env.sim, &env.bus, &dir, kind)?;
        Ok(PeerRows {
            dir,
            token,
            one: Samples::default(),
            sixteen: Samples::default(),
        })
    }

    /// This round's share; a peer that fails to start is reported and skipped.
    fn round(&mut self, kind: Kind, ops: usize) {
        match OpensshAgent::start(&self.token, &self.dir) {
            Ok(agent) => {
                let mut warm = Samples::default();
                through_agent(&agent.socket, &agent.key_blob, kind, 1, 2, &mut warm);
                through_agent(&agent.socket, &agent.key_blob, kind, 1, ops, &mut self.one);
                through_agent(
                    &agent.socket,
                    &agent.key_blob,
                    kind,
                    16,
                    ops,
                    &mut self.sixteen,
                );
            }
            Err(e) => eprintln!("OpenSSH ssh-agent + tpm2-pkcs11, this round: {e}"),
        }
        self.flush_left_behind();
    }

    /// The exiting ssh-pkcs11-helper leaves tpm2-pkcs11's key and sessions loaded, and a
    /// TPM without a resource manager keeps them: tpmd's next turn would find its slots
    /// taken. (On the kernel RM model they went with the peer's connection.)
    fn flush_left_behind(&self) {
        let tcti = self.token.tcti();
        for kind in ["-t", "-l"] {
            let flushed = Command::new("tpm2_flushcontext")
                .arg(kind)
                .env("TPM2TOOLS_TCTI", tcti)
                .output();
            if !matches!(&flushed, Ok(out) if out.status.success()) {
                eprintln!("tpm2_flushcontext {kind} after the OpenSSH peer: {flushed:?}");
            }
        }
    }
}

/// OpenSSH's ssh-agent with a tpm2-pkcs11 key (`ssh-add -s`), on the benchmark's TPM and
/// transport (tpmd stopped).
struct OpensshAgent {
    agent: Child,
    socket: PathBuf,
    key_blob: Vec<u8>,
}

impl Drop for OpensshAgent {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
    }
}

impl OpensshAgent {
    fn start(token: &Tpm2Pkcs11, dir: &Path) -> Result<Self, String> {
        let socket = dir.join("openssh-agent.sock");
        let _ = std::fs::remove_file(&socket);
        let agent = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .envs(token.vars())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ssh-agent: {e}"))?;
        let mut peer = OpensshAgent {
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
        std::fs::write(&askpass, format!("#!/bin/sh\necho {}\n", tpm2_pkcs11::PIN))
            .map_err(|e| e.to_string())?;
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| e.to_string())?;
        let out = Command::new("ssh-add")
            .args(["-s", tpm2_pkcs11::MODULE])
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
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let model = Model::from_args();
    let ops = ops_arg(400);
    let rounds = usize_arg("--rounds", 4).max(1);
    let with_peer = flag("--peer");
    for kind in KINDS {
        measure(&model, kind, ops, rounds, with_peer).await;
    }
}
