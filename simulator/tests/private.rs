//! A private simulator (what `tpmd --simulator` runs) against a real swtpm: no TCP,
//! sockets only its user can open, reset through its unix control socket, and no swtpm
//! left behind when its owner is killed with SIGKILL.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tpmd_simulator::proxy::ProxyOptions;
use tpmd_simulator::{Family, Simulator, SimulatorError, SimulatorOptions};
use tpmd_tpm2::transport::{Connection, Transport};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// TPM2_GetRandom(8).
const GET_RANDOM: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8];
const RC_INITIALIZE: u32 = 0x100;

fn rc_of(transport: &Transport) -> Result<u32, Box<dyn std::error::Error>> {
    let mut connection = Connection::open(transport, None)?;
    let response = connection.transmit(&GET_RANDOM)?;
    let code = response.get(6..10).ok_or("short response")?;
    Ok(u32::from_be_bytes(code.try_into()?))
}

fn mode(path: &Path) -> Result<u32, std::io::Error> {
    Ok(path.symlink_metadata()?.permissions().mode() & 0o7777)
}

/// Inodes of the TCP sockets of the whole machine, from /proc/net/tcp{,6}.
fn tcp_socket_inodes() -> Result<BTreeSet<u64>, std::io::Error> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table)?;
        for line in text.lines().skip(1) {
            if let Some(inode) = line.split_whitespace().nth(9) {
                inodes.extend(inode.parse::<u64>().ok());
            }
        }
    }
    Ok(inodes)
}

/// Inodes of the sockets process `pid` holds.
fn socket_inodes_of(pid: u32) -> Result<BTreeSet<u64>, std::io::Error> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let target = target.to_string_lossy().into_owned();
            if let Some(n) = target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
            {
                inodes.extend(n.parse::<u64>().ok());
            }
        }
    }
    Ok(inodes)
}

/// Whether `pid` has exited: gone, or a zombie nobody reaped yet.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Waits until `pid` has exited, for at most `limit`.
fn wait_exited(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if exited(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    exited(pid)
}

/// The child of `parent` whose command name is `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            let comm = head.split_once(" (")?.1;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && comm == name).then_some(pid)
        })
}

#[test]
fn a_private_simulator_listens_on_no_tcp_port_and_only_for_its_user() -> TestResult {
    let sim = Simulator::start_private_in_tempdir(Family::Tpm2, true, ProxyOptions::raw_device())?;
    assert!(sim.is_private());
    assert!(
        sim.srk_created(),
        "the SRK is provisioned through the proxy"
    );
    assert_eq!((sim.port(), sim.ctrl_port()), (0, 0));
    let Transport::SwtpmUnix(socket) = sim.transport() else {
        return Err(format!("not a unix socket: {}", sim.transport()).into());
    };
    let dir = sim.socket_dir().ok_or("no socket directory")?;
    let ctrl = sim.control_socket().ok_or("no control socket")?;
    assert_eq!(socket.parent(), Some(dir));
    assert_eq!(ctrl.parent(), Some(dir));
    assert!(dir.starts_with(sim.state_dir()), "{}", dir.display());
    assert_eq!(mode(dir)?, 0o700);
    assert_eq!(mode(&socket)? & 0o777, 0o600);
    assert_eq!(mode(ctrl)? & 0o777, 0o600);
    assert_eq!(mode(sim.state_dir())?, 0o700);

    let tcp = tcp_socket_inodes()?;
    let swtpm_sockets = socket_inodes_of(sim.pid())?;
    assert!(!swtpm_sockets.is_empty(), "swtpm holds its sockets");
    assert!(
        swtpm_sockets.is_disjoint(&tcp),
        "swtpm holds a TCP socket: {swtpm_sockets:?}"
    );
    assert_eq!(rc_of(&sim.transport())?, 0);
    Ok(())
}

#[test]
fn a_private_simulator_resets_through_its_control_socket() -> TestResult {
    let sim = Simulator::start_private_in_tempdir(Family::Tpm2, false, ProxyOptions::kernel_rm())?;
    assert!(matches!(sim.transport(), Transport::KernelRmSocket(_)));
    assert_eq!(rc_of(&sim.transport())?, 0);
    sim.init_only()?;
    assert_eq!(rc_of(&sim.transport())?, RC_INITIALIZE);
    sim.reset()?;
    assert_eq!(rc_of(&sim.transport())?, 0);
    let counts = sim.proxy().ok_or("no proxy")?.counts();
    // Startup went through the proxy's own channel, uncounted.
    assert_eq!(counts.get(&0x144), None, "{counts:x?}");
    assert_eq!(counts.get(&0x17B), Some(&3), "{counts:x?}");
    Ok(())
}

#[test]
fn a_private_tpm12_simulator_serves() -> TestResult {
    let sim = Simulator::start_private_in_tempdir(Family::Tpm12, true, ProxyOptions::raw_device())?;
    let mut connection = Connection::open(&sim.transport(), None)?;
    // TPM_GetRandom(8).
    let response = connection.transmit(&[0x00, 0xc1, 0, 0, 0, 14, 0, 0, 0, 0x46, 0, 0, 0, 8])?;
    assert_eq!(response.get(6..10), Some(&[0u8, 0, 0, 0][..]));
    drop(connection);
    sim.reset()?;
    Ok(())
}

#[test]
fn dropping_a_private_simulator_ends_swtpm_and_removes_its_sockets() -> TestResult {
    let state = tempfile::tempdir()?;
    let opts = SimulatorOptions::new(state.path().join("state"));
    let sim = Simulator::start_private(opts, ProxyOptions::raw_device())?;
    let pid = sim.pid();
    let dir = sim.socket_dir().ok_or("no socket directory")?.to_path_buf();
    assert!(!exited(pid));
    drop(sim);
    assert!(exited(pid), "swtpm {pid} still runs");
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(state.path().join("state").join("swtpm.log").exists());
    Ok(())
}

#[test]
fn a_private_simulator_refuses_tcp() {
    let opts = SimulatorOptions {
        port: Some(2321),
        ..SimulatorOptions::new("/nonexistent")
    };
    let err = Simulator::start_private(opts, ProxyOptions::raw_device()).err();
    assert!(matches!(err, Some(SimulatorError::PrivatePort)), "{err:?}");
    let tcp = ProxyOptions::raw_device().with_tcp_listeners();
    let err = Simulator::start_private(SimulatorOptions::new("/nonexistent"), tcp).err();
    assert!(matches!(err, Some(SimulatorError::Proxy(_))), "{err:?}");
}

/// `tpmd-simulator --private` on `state`, started and ready; returns it and its
/// TPMD_TRANSPORT.
fn start_private_cli(state: &Path) -> Result<(Child, String), Box<dyn std::error::Error>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tpmd-simulator"))
        .arg("--private")
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let transport = line
        .trim()
        .strip_prefix("TPMD_TRANSPORT=")
        .ok_or_else(|| format!("unexpected first line {line:?}"))?
        .to_string();
    Ok((child, transport))
}

#[test]
fn swtpm_ends_with_its_owner_even_after_kill_9_and_the_state_is_free_at_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let state: PathBuf = dir.path().join("state");
    let (mut owner, transport) = start_private_cli(&state)?;
    let swtpm = child_named(owner.id(), "swtpm").ok_or("no swtpm child")?;
    assert!(!exited(swtpm));
    assert_eq!(rc_of(&transport.parse()?)?, 0);

    kill(Pid::from_raw(i32::try_from(owner.id())?), Signal::SIGKILL)?;
    owner.wait()?;
    // A restart right away, while the old swtpm may still be on its way out, waits
    // for the state's lock rather than failing.
    let next = Simulator::start_private(SimulatorOptions::new(&state), ProxyOptions::raw_device())?;
    assert!(
        wait_exited(swtpm, Duration::from_secs(5)),
        "swtpm {swtpm} outlived its owner"
    );
    assert!(!next.srk_created(), "the SRK comes from the saved state");
    assert_eq!(rc_of(&next.transport())?, 0);
    // The socket directory the killed one left behind is gone.
    let socket_dirs: Vec<_> = std::fs::read_dir(&state)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("sockets-"))
        .map(|e| e.path())
        .collect();
    assert_eq!(
        socket_dirs,
        vec![next.socket_dir().ok_or("no socket dir")?.to_path_buf()]
    );
    Ok(())
}

#[test]
fn a_state_in_use_by_a_running_simulator_is_refused_naming_its_process() -> TestResult {
    let dir = tempfile::tempdir()?;
    let opts = SimulatorOptions::new(dir.path().join("state"));
    let first = Simulator::start_private(opts.clone(), ProxyOptions::raw_device())?;
    match Simulator::start_private(opts, ProxyOptions::raw_device()) {
        Err(err @ SimulatorError::StateInUse { holder, .. }) => {
            assert_eq!(holder, Some(first.pid()), "{err}");
            let text = err.to_string();
            assert!(text.contains(&first.pid().to_string()), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
        Err(other) => return Err(format!("wrong error: {other}").into()),
        Ok(_) => return Err("two simulators on one state".into()),
    }
    assert_eq!(rc_of(&first.transport())?, 0);
    Ok(())
}

#[test]
fn a_start_waits_for_a_simulator_that_is_stopping() -> TestResult {
    let dir = tempfile::tempdir()?;
    let opts = SimulatorOptions::new(dir.path().join("state"));
    let first = Simulator::start_private(opts.clone(), ProxyOptions::raw_device())?;
    // The first lets go of the state shortly after the second has tried to take it.
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
    });
    let second = Simulator::start_private(opts, ProxyOptions::raw_device())?;
    stopper.join().map_err(|_| "stopper panicked")?;
    assert!(!second.srk_created());
    assert_eq!(rc_of(&second.transport())?, 0);
    let log = std::fs::read_to_string(second.log_path())?;
    assert!(
        log.contains("Could not lock access to lockfile"),
        "the second start never found the state locked: {log}"
    );
    Ok(())
}
