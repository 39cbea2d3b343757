//! The harness against a real swtpm: a fresh simulator per test.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;
use tpmd_tpm2::transport::OpenEsys;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tpmd_simulator::{Family, Simulator, SimulatorError, SimulatorOptions};
use tpmd_tpm2::srk::{create_ecc_owner_primary, srk_state, SrkState, SRK_HANDLE};
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::StartupType;
use tss_esapi::handles::ObjectHandle;
use tss_esapi::structures::Public;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn process_gone(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    kill(Pid::from_raw(raw), None) == Err(Errno::ESRCH)
}

fn srk_public(sim: &Simulator) -> Result<Public, Box<dyn std::error::Error>> {
    let mut ctx = sim.transport().open()?;
    match srk_state(&mut ctx)? {
        SrkState::Present { public } => Ok(public),
        other => Err(format!("no SRK: {other:?}").into()),
    }
}

#[test]
fn starts_and_provisions_the_srk() -> TestResult {
    let sim = Simulator::start_temporary()?;
    assert_eq!(sim.family(), Family::Tpm2);
    assert_eq!(sim.ctrl_port(), sim.port() + 1);
    assert_eq!(
        sim.transport().to_string(),
        format!("swtpm:host=127.0.0.1,port={}", sim.port())
    );
    assert!(sim.srk_created());
    let public = srk_public(&sim)?;
    assert!(matches!(public, Public::Rsa { .. }));
    let mode = std::os::unix::fs::PermissionsExt::mode(&sim.state_dir().metadata()?.permissions());
    assert_eq!(mode & 0o777, 0o700);
    Ok(())
}

#[test]
fn without_provisioning_there_is_no_srk() -> TestResult {
    let sim = Simulator::start_in_tempdir(Family::Tpm2, None, false)?;
    assert!(!sim.srk_created());
    let mut ctx = sim.transport().open()?;
    assert!(matches!(srk_state(&mut ctx)?, SrkState::Absent));
    Ok(())
}

#[test]
fn the_srk_is_created_once_and_state_persists_across_restarts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let opts = SimulatorOptions::new(dir.path().join("state"));

    let first = Simulator::start(opts.clone())?;
    assert!(first.srk_created());
    let public = srk_public(&first)?;
    first.stop()?;

    let second = Simulator::start(opts)?;
    assert!(
        !second.srk_created(),
        "the SRK must come from the saved state"
    );
    assert_eq!(srk_public(&second)?, public);
    assert!(second.log_path().exists());
    Ok(())
}

#[test]
fn reset_invalidates_saved_contexts_but_keeps_the_srk() -> TestResult {
    let sim = Simulator::start_temporary()?;
    let saved = {
        let mut ctx = sim.transport().open()?;
        let key = create_ecc_owner_primary(&mut ctx)?;
        let saved = ctx.context_save(key.into())?;
        ctx.flush_context(key.into())?;
        // Control: before the reset the saved context loads.
        let again = ctx.context_load(saved.clone())?;
        ctx.flush_context(again)?;
        saved
    };
    sim.reset()?;
    let mut ctx = sim.transport().open()?;
    let err = match ctx.context_load(saved) {
        Ok(handle) => {
            let _ = ctx.flush_context(handle);
            return Err("a saved context survived the reset".into());
        }
        Err(err) => err,
    };
    match err {
        tss_esapi::Error::Tss2Error(rc) => {
            assert_eq!(rc.kind(), Some(Tss2ResponseCodeKind::Integrity), "{err}")
        }
        other => return Err(format!("unexpected error {other}").into()),
    }
    assert!(matches!(srk_state(&mut ctx)?, SrkState::Present { .. }));
    Ok(())
}

#[test]
fn init_only_leaves_startup_to_a_connected_client() -> TestResult {
    let sim = Simulator::start_temporary()?;
    let mut ctx = sim.transport().open()?;
    let key = create_ecc_owner_primary(&mut ctx)?;
    ctx.flush_context(key.into())?;
    sim.init_only()?;
    // The same connection sees the power cycle...
    match srk_state(&mut ctx) {
        Err(err) => assert!(err.to_string().contains("0x81000001"), "{err}"),
        Ok(state) => return Err(format!("TPM answered before Startup: {state:?}").into()),
    }
    // ...and can start the TPM itself.
    ctx.startup(StartupType::Clear)?;
    assert!(matches!(srk_state(&mut ctx)?, SrkState::Present { .. }));
    Ok(())
}

#[test]
fn drop_kills_swtpm_and_removes_the_temporary_state() -> TestResult {
    let sim = Simulator::start_temporary()?;
    let pid = sim.pid();
    let dir = sim.state_dir().to_path_buf();
    let port = sim.port();
    assert!(!process_gone(pid));
    drop(sim);
    assert!(process_gone(pid), "swtpm pid {pid} still exists");
    assert!(!dir.exists());
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    Ok(())
}

#[test]
fn a_missing_state_dir_parent_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let opts = SimulatorOptions::new(dir.path().join("missing").join("state"));
    match Simulator::start(opts) {
        Err(SimulatorError::StateDirParentMissing(path)) => {
            assert!(path.ends_with("missing/state"));
            Ok(())
        }
        Err(other) => Err(format!("wrong error: {other}").into()),
        Ok(_) => Err("started without a state dir parent".into()),
    }
}

#[test]
fn a_taken_port_is_reported_with_the_log() -> TestResult {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let mut opts = SimulatorOptions::new(dir.path().join("state"));
    opts.port = Some(port);
    match Simulator::start(opts) {
        Err(err @ SimulatorError::Exited { .. }) => {
            let text = err.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.contains("swtpm.log"), "{text}");
            Ok(())
        }
        Err(other) => Err(format!("wrong error: {other}").into()),
        Ok(_) => Err("started on a port that is in use".into()),
    }
}

#[test]
fn parallel_starts_get_distinct_ports() -> TestResult {
    let handles: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(Simulator::start_temporary))
        .collect();
    let mut sims = Vec::new();
    for handle in handles {
        let sim = handle.join().map_err(|_| "start thread panicked")??;
        sims.push(sim);
    }
    let (a, b) = (&sims[0], &sims[1]);
    let mut ports = [a.port(), a.ctrl_port(), b.port(), b.ctrl_port()];
    ports.sort_unstable();
    assert!(ports.windows(2).all(|w| w[0] != w[1]), "{ports:?}");
    for sim in &sims {
        srk_public(sim)?;
    }
    Ok(())
}

#[test]
fn tpm12_starts_and_resets() -> TestResult {
    let sim = Simulator::start_in_tempdir(Family::Tpm12, None, true)?;
    assert_eq!(sim.family(), Family::Tpm12);
    assert!(!sim.srk_created());
    assert!(sim.state_dir().join("tpm-00.permall").exists());
    sim.reset()?;
    Ok(())
}

#[test]
fn the_binary_prints_the_transport_and_stops_on_sigterm() -> TestResult {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tpmd-simulator"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let transport = line
        .trim()
        .strip_prefix("TPMD_TRANSPORT=")
        .ok_or_else(|| format!("unexpected first line {line:?}"))?;
    let transport: tpmd_tpm2::transport::Transport = transport.parse()?;
    let tpmd_tpm2::transport::Transport::Swtpm { port, .. } = transport.clone() else {
        return Err("not a swtpm transport".into());
    };
    {
        let mut ctx = transport.open()?;
        assert!(matches!(srk_state(&mut ctx)?, SrkState::Present { .. }));
        let handle = ctx.tr_from_tpm_public(tss_esapi::handles::TpmHandle::Persistent(
            tss_esapi::handles::PersistentTpmHandle::new(SRK_HANDLE)?,
        ))?;
        assert_ne!(handle, ObjectHandle::None);
    }
    kill(Pid::from_raw(i32::try_from(child.id())?), Signal::SIGTERM)?;
    let status = child.wait()?;
    assert!(status.success(), "{status}");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    Ok(())
}
