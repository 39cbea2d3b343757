//! The kernel resource manager model and the proxy against a real swtpm, through a raw
//! client on the proxy's unix socket (exact command counts) and through tss-esapi on
//! its TCP listener.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tpmd_simulator::kernel_rm::wire;
use tpmd_simulator::latency::LatencyProfile;
use tpmd_simulator::proxy::{Proxy, ProxyOptions};
use tpmd_simulator::Simulator;
use tpmd_tpm2::transport::OpenEsys;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CREATE_PRIMARY: u32 = 0x131;
const CREATE: u32 = 0x153;
const LOAD: u32 = 0x157;
const SIGN: u32 = 0x15D;
const START_AUTH_SESSION: u32 = 0x176;
const GET_RANDOM: u32 = 0x17B;
const CONTEXT_LOAD: u32 = wire::CC_CONTEXT_LOAD;
const CONTEXT_SAVE: u32 = wire::CC_CONTEXT_SAVE;
const FLUSH: u32 = wire::CC_FLUSH_CONTEXT;

const RH_OWNER: u32 = 0x4000_0001;
const RH_NULL: u32 = 0x4000_0007;
const SRK: u32 = 0x8100_0001;
const RC_OBJECT_MEMORY: u32 = 0x902;
const EINVAL: i32 = 22;
const EFAULT: i32 = 14;
const E2BIG: i32 = 7;

/// A raw client on the proxy's unix socket: one open of `/dev/tpmrm0`. It reads the
/// model's answers as they are (tpmd's transport would turn the errno answers into
/// errors and reopen), so the tests see exactly what the kernel would do.
struct Client(UnixStream);

impl Client {
    fn connect(proxy: &Proxy) -> Result<Client, std::io::Error> {
        Ok(Client(UnixStream::connect(proxy.socket_path())?))
    }

    fn call(&mut self, command: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        self.0.write_all(command)?;
        let mut header = [0u8; 10];
        self.0.read_exact(&mut header)?;
        let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        let mut response = header.to_vec();
        response.resize(size.max(10), 0);
        self.0.read_exact(&mut response[10..])?;
        Ok(response)
    }

    /// The response code of `command`.
    fn rc(&mut self, command: &[u8]) -> Result<u32, std::io::Error> {
        Ok(wire::code(&self.call(command)?).unwrap_or(u32::MAX))
    }

    /// Sends `command`, which must succeed, and returns the handle it returns.
    fn handle(&mut self, command: &[u8]) -> Result<u32, Box<dyn std::error::Error>> {
        let response = self.call(command)?;
        match wire::code(&response) {
            Some(0) => Ok(wire::response_handle(&response).ok_or("no handle")?),
            rc => Err(format!("command failed with {rc:x?}").into()),
        }
    }
}

fn password_session() -> Vec<u8> {
    // Size, TPM_RS_PW, empty nonce, no attributes, empty password.
    let mut area = 9u32.to_be_bytes().to_vec();
    area.extend_from_slice(&[0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
    area
}

/// TPMT_PUBLIC of an ECC P-256 ECDSA-SHA256 signing key; `unique` makes primaries
/// distinct.
fn ecc_signing_template(unique: &[u8]) -> Vec<u8> {
    let mut public = Vec::new();
    public.extend_from_slice(&0x0023u16.to_be_bytes()); // TPM_ALG_ECC
    public.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA-256 name
                                                        // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | sign
    public.extend_from_slice(&0x0004_0472u32.to_be_bytes());
    public.extend_from_slice(&[0, 0]); // no policy
    public.extend_from_slice(&0x0010u16.to_be_bytes()); // no symmetric
    public.extend_from_slice(&0x0018u16.to_be_bytes()); // ECDSA
    public.extend_from_slice(&0x000Bu16.to_be_bytes()); // with SHA-256
    public.extend_from_slice(&0x0003u16.to_be_bytes()); // NIST P-256
    public.extend_from_slice(&0x0010u16.to_be_bytes()); // no KDF
    public.extend_from_slice(&(unique.len() as u16).to_be_bytes());
    public.extend_from_slice(unique);
    public.extend_from_slice(&[0, 0]);
    public
}

fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

/// CreatePrimary or Create under `parent`: parent, password session, empty sensitive,
/// template, no outside info, no PCRs.
fn create_command(cc: u32, parent: u32, unique: &[u8]) -> Vec<u8> {
    let mut body = parent.to_be_bytes().to_vec();
    body.extend(password_session());
    body.extend_from_slice(&[0, 4, 0, 0, 0, 0]);
    body.extend(tpm2b(&ecc_signing_template(unique)));
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    wire::frame(wire::ST_SESSIONS, cc, &body)
}

fn create_primary(label: u8) -> Vec<u8> {
    create_command(CREATE_PRIMARY, RH_OWNER, &[label; 8])
}

fn sign(key: u32) -> Vec<u8> {
    let mut body = key.to_be_bytes().to_vec();
    body.extend(password_session());
    body.extend(tpm2b(&[0x5A; 32]));
    body.extend_from_slice(&[0, 0x18, 0, 0x0B]); // ECDSA with SHA-256
    body.extend_from_slice(&[0x80, 0x24]); // TPM_ST_HASHCHECK
    body.extend_from_slice(&RH_NULL.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    wire::frame(wire::ST_SESSIONS, SIGN, &body)
}

fn get_random() -> Vec<u8> {
    wire::frame(wire::ST_NO_SESSIONS, GET_RANDOM, &[0, 8])
}

/// An unsalted, unbound HMAC session.
fn start_session() -> Vec<u8> {
    let mut body = RH_NULL.to_be_bytes().to_vec();
    body.extend_from_slice(&RH_NULL.to_be_bytes());
    body.extend(tpm2b(&[7; 16]));
    body.extend_from_slice(&[0, 0, 0x00]); // no salt, TPM_SE_HMAC
    body.extend_from_slice(&[0, 0x10, 0, 0x0B]); // no symmetric, SHA-256
    wire::frame(wire::ST_NO_SESSIONS, START_AUTH_SESSION, &body)
}

fn handles_in(client: &mut Client, first: u32) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    let response = client.call(&wire::get_capability(wire::CAP_HANDLES, first, 32))?;
    let (_, handles) =
        wire::capability_words(&response, wire::CAP_HANDLES).ok_or("no handle list")?;
    Ok(handles)
}

fn counts(pairs: &[(u32, u64)]) -> BTreeMap<u32, u64> {
    pairs.iter().copied().collect()
}

/// Like `assert_eq!` on counts, except that Sign may have been sent more than once:
/// libtpms now and then answers an ECDSA signature with TPM_RC_RETRY, and the kernel
/// (so the model) sends the command again.
fn assert_counts_signing(actual: BTreeMap<u32, u64>, expected: &[(u32, u64)]) {
    let signs = actual.get(&SIGN).copied().unwrap_or_default();
    let mut without_retries = actual;
    if signs > 1 {
        without_retries.insert(SIGN, 1);
    }
    assert_eq!(without_retries, counts(expected));
}

/// Waits for something the proxy does after a client has gone.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn proxy(sim: &Simulator) -> Result<&Proxy, &'static str> {
    sim.proxy().ok_or("the simulator has no proxy")
}

fn kernel_rm() -> Result<Simulator, Box<dyn std::error::Error>> {
    Ok(Simulator::start_temporary_with(ProxyOptions::kernel_rm())?)
}

/// With the TCP listeners, for TSS clients.
fn kernel_rm_on_tcp() -> Result<Simulator, Box<dyn std::error::Error>> {
    let options = ProxyOptions::kernel_rm().with_tcp_listeners();
    Ok(Simulator::start_temporary_with(options)?)
}

#[test]
fn each_connection_gets_its_own_virtual_handles_and_both_sign() -> TestResult {
    let sim = kernel_rm()?;
    let proxy = proxy(&sim)?;
    assert!(proxy.kernel_rm());
    let (mut a, mut b) = (Client::connect(proxy)?, Client::connect(proxy)?);
    for (n, expected) in [0x80FF_FFFF, 0x80FF_FFFE, 0x80FF_FFFD]
        .into_iter()
        .enumerate()
    {
        assert_eq!(a.handle(&create_primary(n as u8))?, expected);
        assert_eq!(b.handle(&create_primary(0x10 + n as u8))?, expected);
    }
    for client in [&mut a, &mut b] {
        for key in [0x80FF_FFFF, 0x80FF_FFFE, 0x80FF_FFFD] {
            assert_eq!(client.rc(&sign(key))?, 0, "sign with 0x{key:08x}");
        }
        let mut listed = handles_in(client, wire::HT_TRANSIENT)?;
        listed.sort_unstable();
        assert_eq!(listed, vec![0x80FF_FFFD, 0x80FF_FFFE, 0x80FF_FFFF]);
    }
    Ok(())
}

#[test]
fn a_command_on_a_space_with_n_objects_costs_n_loads_saves_and_flushes() -> TestResult {
    let sim = kernel_rm()?;
    let proxy = proxy(&sim)?;
    let mut client = Client::connect(proxy)?;
    for n in 0..=3u64 {
        proxy.reset_counts();
        assert_eq!(client.rc(&get_random())?, 0);
        let mut expected = vec![(GET_RANDOM, 1)];
        if n > 0 {
            expected.extend([(CONTEXT_LOAD, n), (CONTEXT_SAVE, n), (FLUSH, n)]);
        }
        assert_eq!(proxy.counts(), counts(&expected), "{n} objects");
        if n < 3 {
            client.handle(&create_primary(n as u8))?;
        }
    }
    proxy.reset_counts();
    assert_eq!(client.rc(&sign(0x80FF_FFFE))?, 0);
    assert_counts_signing(
        proxy.counts(),
        &[(CONTEXT_LOAD, 3), (SIGN, 1), (CONTEXT_SAVE, 3), (FLUSH, 3)],
    );
    Ok(())
}

#[test]
fn a_fourth_object_is_refused_and_the_space_keeps_its_three() -> TestResult {
    let sim = kernel_rm()?;
    let mut client = Client::connect(proxy(&sim)?)?;
    for n in 0..3 {
        client.handle(&create_primary(n))?;
    }
    // swtpm has 3 object slots, all taken by the space's objects while the command
    // runs: the TPM refuses before the kernel's own ENOMEM could.
    assert_eq!(client.rc(&create_primary(3))?, RC_OBJECT_MEMORY);
    for key in [0x80FF_FFFF, 0x80FF_FFFE, 0x80FF_FFFD] {
        assert_eq!(client.rc(&sign(key))?, 0);
    }
    assert_eq!(handles_in(&mut client, wire::HT_TRANSIENT)?.len(), 3);
    Ok(())
}

#[test]
fn a_load_under_the_persistent_srk_needs_a_slot_for_the_srk_as_well() -> TestResult {
    let sim = kernel_rm()?;
    let mut client = Client::connect(proxy(&sim)?)?;
    // Create returns (after the parameter size) outPrivate, then outPublic.
    let created = client.call(&create_command(CREATE, SRK, &[]))?;
    assert_eq!(wire::code(&created), Some(0));
    let private_len = wire::read_u16(&created, 14).ok_or("short Create response")? as usize;
    let public_at = 16 + private_len;
    let public_len = wire::read_u16(&created, public_at).ok_or("short Create response")? as usize;
    let blobs = created
        .get(14..public_at + 2 + public_len)
        .ok_or("short Create response")?;
    let mut body = SRK.to_be_bytes().to_vec();
    body.extend(password_session());
    body.extend_from_slice(blobs);
    let load = wire::frame(wire::ST_SESSIONS, LOAD, &body);
    assert_eq!(client.handle(&load)?, 0x80FF_FFFF);
    assert_eq!(client.handle(&load)?, 0x80FF_FFFE);
    // Two objects loaded, the SRK loaded for the command, the new object: 4 > 3.
    assert_eq!(client.rc(&load)?, RC_OBJECT_MEMORY);
    assert_eq!(handles_in(&mut client, wire::HT_TRANSIENT)?.len(), 2);
    Ok(())
}

#[test]
fn flush_and_context_save_name_virtual_handles() -> TestResult {
    let sim = kernel_rm()?;
    let proxy = proxy(&sim)?;
    let mut client = Client::connect(proxy)?;
    for n in 0..3 {
        client.handle(&create_primary(n))?;
    }
    // The client saves its own context of the middle key, then flushes the key.
    let saved = client.call(&wire::context_save(0x80FF_FFFE))?;
    assert_eq!(wire::code(&saved), Some(0));
    let context = wire::saved_context(&saved).ok_or("no context")?.to_vec();
    proxy.reset_counts();
    assert_eq!(client.rc(&wire::flush_context(0x80FF_FFFE))?, 0);
    // The kernel learns of the flush from the failing ContextSave of that object.
    assert_eq!(
        proxy.counts(),
        counts(&[(CONTEXT_LOAD, 3), (CONTEXT_SAVE, 3), (FLUSH, 3)])
    );
    let mut listed = handles_in(&mut client, wire::HT_TRANSIENT)?;
    listed.sort_unstable();
    assert_eq!(listed, vec![0x80FF_FFFD, 0x80FF_FFFF]);
    assert_eq!(
        wire::write_errno(client.rc(&sign(0x80FF_FFFE))?),
        Some(EINVAL)
    );
    // Loading the client's saved context fills the free slot again.
    assert_eq!(client.handle(&wire::context_load(&context))?, 0x80FF_FFFE);
    assert_eq!(client.rc(&sign(0x80FF_FFFE))?, 0);
    Ok(())
}

#[test]
fn sessions_are_swapped_and_flushed_when_the_connection_closes() -> TestResult {
    let sim = kernel_rm()?;
    let proxy = proxy(&sim)?;
    let mut owner = Client::connect(proxy)?;
    let mut observer = Client::connect(proxy)?;
    let session = owner.handle(&start_session())?;
    assert_eq!(session & wire::HT_MASK, wire::HT_HMAC_SESSION);
    owner.handle(&create_primary(1))?;
    proxy.reset_counts();
    assert_eq!(owner.rc(&get_random())?, 0);
    assert_eq!(
        proxy.counts(),
        counts(&[
            (CONTEXT_LOAD, 2),
            (GET_RANDOM, 1),
            (CONTEXT_SAVE, 2),
            (FLUSH, 1)
        ])
    );
    // Between commands the session is saved (TPM_HT_SAVED_SESSION), not loaded.
    assert!(handles_in(&mut observer, wire::HT_POLICY_SESSION)?.contains(&session));
    assert!(!handles_in(&mut observer, wire::HT_HMAC_SESSION)?.contains(&session));
    drop(owner);
    wait_for("the flush of the closed connection's session", || {
        proxy.counts().get(&FLUSH) == Some(&2)
    });
    assert!(!handles_in(&mut observer, wire::HT_POLICY_SESSION)?.contains(&session));
    Ok(())
}

#[test]
fn after_a_reset_a_space_holding_objects_fails_until_it_is_reopened() -> TestResult {
    let sim = kernel_rm()?;
    let proxy = proxy(&sim)?;
    let mut with_object = Client::connect(proxy)?;
    with_object.handle(&create_primary(1))?;
    let mut with_session = Client::connect(proxy)?;
    with_session.handle(&start_session())?;
    sim.reset()?;
    // A saved context no longer loads: TPM_RC_INTEGRITY, for objects and sessions
    // alike on libtpms. The kernel forgets neither (it would forget a session only on
    // TPM_RC_HANDLE or TPM_RC_REFERENCE_H0) and fails every write with EFAULT.
    for client in [&mut with_object, &mut with_session] {
        for _ in 0..2 {
            assert_eq!(wire::write_errno(client.rc(&get_random())?), Some(EFAULT));
        }
    }
    // A new open works at once.
    let mut reopened = Client::connect(proxy)?;
    assert_eq!(reopened.handle(&create_primary(1))?, 0x80FF_FFFF);
    assert_eq!(reopened.rc(&sign(0x80FF_FFFF))?, 0);
    Ok(())
}

#[test]
fn malformed_and_unknown_commands_get_what_the_kernel_gives() -> TestResult {
    let sim = kernel_rm()?;
    let proxy = proxy(&sim)?;
    let mut client = Client::connect(proxy)?;
    client.handle(&create_primary(1))?;
    let unknown = wire::frame(wire::ST_NO_SESSIONS, 0x0000_0FFF, &[]);
    assert_eq!(client.rc(&unknown)?, 0x000B_0143);
    let no_handle = wire::frame(wire::ST_SESSIONS, SIGN, &[]);
    assert_eq!(wire::write_errno(client.rc(&no_handle)?), Some(EINVAL));
    assert_eq!(client.rc(&sign(0x80FF_FFFF))?, 0);
    let mut huge = wire::frame(wire::ST_NO_SESSIONS, GET_RANDOM, &[]);
    huge[2..6].copy_from_slice(&5000u32.to_be_bytes());
    assert_eq!(wire::write_errno(client.rc(&huge)?), Some(E2BIG));
    assert!(
        client.call(&get_random()).is_err(),
        "the connection stays open"
    );
    Ok(())
}

#[test]
fn tss_esapi_signs_with_an_hmac_session_through_the_mssim_listener() -> TestResult {
    use tss_esapi::attributes::SessionAttributesBuilder;
    use tss_esapi::constants::SessionType;
    use tss_esapi::interface_types::algorithm::HashingAlgorithm;
    use tss_esapi::interface_types::ecc::EccCurve;
    use tss_esapi::interface_types::resource_handles::Hierarchy;
    use tss_esapi::structures::EccScheme;
    use tss_esapi::structures::{Digest, SignatureScheme, SymmetricDefinition};
    use tss_esapi::structures::{HashScheme, HashcheckTicket};
    use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
    use tss_esapi::utils::create_unrestricted_signing_ecc_public;

    let sim = kernel_rm_on_tcp()?;
    let proxy = proxy(&sim)?;
    // The mssim TCTI keeps its connection: one space for the whole context.
    let tcti = proxy.mssim_tcti().ok_or("no mssim listener")?;
    let mut ctx = tss_esapi::Context::new(tss_esapi::TctiNameConf::from_str(&tcti)?)?;
    let template = create_unrestricted_signing_ecc_public(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )?;
    let key = ctx.execute_with_nullauth_session(|ctx| {
        ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
    })?;
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Hmac,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )?
        .ok_or("no session")?;
    let (attributes, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .build();
    ctx.tr_sess_set_attributes(session, attributes, mask)?;
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: 0x8024,
        hierarchy: RH_NULL,
        digest: Default::default(),
    })?;
    let digest = Digest::try_from(vec![0x5A; 32])?;
    let scheme = SignatureScheme::EcDsa {
        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
    };
    proxy.reset_counts();
    ctx.execute_with_session(Some(session), |ctx| {
        ctx.sign(key.key_handle, digest.clone(), scheme, ticket.clone())
    })?;
    // The key and the HMAC session are swapped in and out around the signature.
    assert_counts_signing(
        proxy.counts(),
        &[(CONTEXT_LOAD, 2), (SIGN, 1), (CONTEXT_SAVE, 2), (FLUSH, 1)],
    );
    Ok(())
}

#[test]
fn the_tcp_listener_relays_swtpm_s_control_channel() -> TestResult {
    let sim = kernel_rm_on_tcp()?;
    let port = proxy(&sim)?.tcp_port().ok_or("no TCP listener")?;
    let output = std::process::Command::new("swtpm_ioctl")
        .args(["--tcp", &format!("127.0.0.1:{}", port + 1), "-c"])
        .output()?;
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("apabilit"));
    Ok(())
}

#[test]
fn the_swtpm_tcti_opens_a_space_per_command() -> TestResult {
    let sim = kernel_rm_on_tcp()?;
    let proxy = proxy(&sim)?;
    let mut ctx = sim.tcp_transport().open()?;
    assert_eq!(ctx.get_random(8)?.len(), 8);
    let session = ctx.start_auth_session(
        None,
        None,
        None,
        tss_esapi::constants::SessionType::Hmac,
        tss_esapi::structures::SymmetricDefinition::AES_128_CFB,
        tss_esapi::interface_types::algorithm::HashingAlgorithm::Sha256,
    )?;
    assert!(session.is_some());
    // The TCTI closed its connection right after StartAuthSession, and the kernel
    // flushes the session with the space: this TCTI cannot use the kernel model.
    wait_for("the session's flush", || {
        proxy.counts().get(&FLUSH) == Some(&1)
    });
    Ok(())
}

#[test]
fn without_the_kernel_model_commands_pass_through_and_are_counted() -> TestResult {
    let sim = Simulator::start_temporary_with(ProxyOptions::raw_device())?;
    let proxy = proxy(&sim)?;
    assert!(!proxy.kernel_rm());
    let mut a = Client::connect(proxy)?;
    let mut b = Client::connect(proxy)?;
    proxy.reset_counts();
    let key = a.handle(&create_primary(1))?;
    assert_eq!(key & wire::HT_MASK, wire::HT_TRANSIENT);
    assert_ne!(key, 0x80FF_FFFF);
    // Clients of /dev/tpm0 share the TPM's handles.
    assert_eq!(b.rc(&sign(key))?, 0);
    assert_eq!(b.rc(&wire::flush_context(key))?, 0);
    assert_counts_signing(
        proxy.counts(),
        &[(CREATE_PRIMARY, 1), (SIGN, 1), (FLUSH, 1)],
    );
    Ok(())
}

#[test]
fn a_delayed_command_holds_the_tpm_for_every_client() -> TestResult {
    let profile = LatencyProfile::parse(
        "default = 0\n[commands]\nGetRandom = 1500\n",
        "a slow GetRandom",
    )?;
    let sim = Simulator::start_temporary_with(ProxyOptions::kernel_rm().with_latency(profile))?;
    let proxy = proxy(&sim)?;
    let mut slow = Client::connect(proxy)?;
    let mut fast = Client::connect(proxy)?;
    let slow_done = Arc::new(AtomicBool::new(false));
    let slow_thread = {
        let slow_done = Arc::clone(&slow_done);
        std::thread::spawn(move || {
            let rc = slow.rc(&get_random());
            slow_done.store(true, Ordering::SeqCst);
            rc
        })
    };
    wait_for("GetRandom to reach the TPM", || {
        proxy.counts().contains_key(&GET_RANDOM)
    });
    // GetRandom is at the TPM, which the profile keeps busy: the other client's
    // command has not reached it yet, and is served only after GetRandom's answer.
    let fast_thread = std::thread::spawn(move || fast.rc(&wire::get_capability(6, 0x100, 1)));
    assert!(!slow_done.load(Ordering::SeqCst));
    assert_eq!(proxy.counts().get(&wire::CC_GET_CAPABILITY), None);
    assert_eq!(fast_thread.join().map_err(|_| "fast client panicked")??, 0);
    assert_eq!(slow_thread.join().map_err(|_| "slow client panicked")??, 0);
    assert_eq!(
        proxy.counts(),
        counts(&[(GET_RANDOM, 1), (wire::CC_GET_CAPABILITY, 1)])
    );
    Ok(())
}

#[test]
fn tpmd_s_own_command_path_provisions_the_srk_through_the_model() -> TestResult {
    let sim = Simulator::start_in_tempdir(tpmd_simulator::Family::Tpm2, None, false)?
        .with_proxy(ProxyOptions::kernel_rm())?;
    let proxy = proxy(&sim)?;
    let mut tpm = tpmd_tpm2::tpm::Tpm::open(&sim.transport(), None)?;
    // CreatePrimary gets 0x80FFFFFF; EvictControl and FlushContext name it and are
    // mapped to the TPM's handle.
    assert!(tpmd_tpm2::srk::provision_srk(&mut tpm)?);
    assert_eq!(proxy.counts().get(&0x120), Some(&1), "EvictControl");
    let mut again = tpmd_tpm2::tpm::Tpm::open(&sim.transport(), None)?;
    assert!(!tpmd_tpm2::srk::provision_srk(&mut again)?);
    Ok(())
}
