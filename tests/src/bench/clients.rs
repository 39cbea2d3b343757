//! Signing loops through each way in to tpmd (and to tpm2-pkcs11): tpmd's D-Bus API
//! called directly, an SSH agent socket, and a PKCS#11 module's C_Sign.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use sha2::{Digest as _, Sha256};
use tpmd_api::Daemon1Proxy;

use super::kind::Kind;
use super::stats::Samples;
use crate::daemon::binary;

/// tpmd's Sign called directly, one call at a time, on `proxy` (bus or socket).
pub async fn direct_sign(
    proxy: &Daemon1Proxy<'_>,
    key: &[u8],
    auth: &[u8],
    kind: Kind,
    ops: usize,
    samples: &mut Samples,
) {
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let digest = Sha256::digest(i.to_be_bytes());
        let t = Instant::now();
        crate::calls::sign(proxy, key, auth, kind.dbus_scheme(), "sha256", &digest)
            .await
            .unwrap();
        latencies.push(t.elapsed());
    }
    samples.add(latencies, start.elapsed());
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

/// Signatures through the agent at `socket` with the key whose SSH public key blob is
/// `key_blob`: `clients` threads, each with its own connection, `ops` in all. The clock
/// starts when every thread is connected.
pub fn through_agent(
    socket: &Path,
    key_blob: &[u8],
    kind: Kind,
    clients: usize,
    ops: usize,
    samples: &mut Samples,
) {
    let per_client = (ops / clients).max(1);
    let key_blob = Arc::new(key_blob.to_vec());
    let ready = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (socket, key_blob, ready) = (socket.to_path_buf(), key_blob.clone(), ready.clone());
            std::thread::spawn(move || {
                let mut stream = UnixStream::connect(&socket).unwrap();
                ready.wait();
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let data = format!("session {c} {i}");
                    let request = sign_request(&key_blob, data.as_bytes(), kind.ssh_flags);
                    let t = Instant::now();
                    agent_sign(&mut stream, &request);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    ready.wait();
    let start = Instant::now();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    samples.add(all, start.elapsed());
}

/// The SSH public key blob of a tpmd key file.
pub fn ssh_key_blob(key_file: &[u8]) -> Vec<u8> {
    tpmd_api::client::key_file_public(key_file)
        .unwrap()
        .to_ssh_public_key("bench")
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// Gives the running tpmd-ssh-agent at `socket` the PIN of `key_file`, as
/// `echo PIN | tpmd-ssh-agent --set-auth KEYFILE -a SOCKET` does.
pub fn agent_set_auth(socket: &Path, key_file: &Path, pin: &str) {
    let mut child = Command::new(binary("tpmd-ssh-agent"))
        .arg("--set-auth")
        .arg(key_file)
        .arg("-a")
        .arg(socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{pin}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "--set-auth failed");
}

/// A PKCS#11 module loaded and initialized for threads.
pub fn load_module(path: &Path) -> Pkcs11 {
    let p = Pkcs11::new(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    p.initialize(CInitializeArgs::OsThreads).unwrap();
    p
}

/// C_Sign with the private key labelled `label` from `threads` threads, each with its
/// own session, `ops` in all; logged in with `pin` first if given. The clock starts
/// when every thread has its session and key handle.
pub fn c_sign(
    p: &Pkcs11,
    kind: Kind,
    label: &str,
    pin: Option<&str>,
    threads: usize,
    ops: usize,
    samples: &mut Samples,
) {
    let slot = p.get_slots_with_token().unwrap()[0];
    // Login is per application and lasts while a session is open.
    let login_session = p.open_ro_session(slot).unwrap();
    if let Some(pin) = pin {
        match login_session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => panic!("C_Login: {e}"),
        }
    }
    let per_thread = (ops / threads).max(1);
    let ready = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let p = p.clone();
            let label = label.to_string();
            let ready = ready.clone();
            std::thread::spawn(move || {
                let s = p.open_ro_session(slot).unwrap();
                let key = s
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(label.into_bytes()),
                    ])
                    .unwrap()[0];
                ready.wait();
                let mut latencies = Vec::with_capacity(per_thread);
                for i in 0..per_thread {
                    let data = (t * 1_000_000 + i).to_be_bytes();
                    let started = Instant::now();
                    s.sign(&kind.mechanism(), key, &data).unwrap();
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    ready.wait();
    let start = Instant::now();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    let wall = start.elapsed();
    drop(login_session);
    samples.add(all, wall);
}
