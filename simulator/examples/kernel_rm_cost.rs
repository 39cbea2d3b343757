//! What a signature costs through the kernel resource manager model, by how many
//! objects the connection holds, against the same signature on a raw device, under a
//! latency profile: TPM commands per signature (counted) and time per signature
//! (printed as a ratio to the raw device, not asserted).
//!
//! `cargo run -p tpmd-simulator --example kernel_rm_cost -- [PROFILE] [SIGNATURES]`
//! (PROFILE: a file or `discrete` / `firmware`; default `discrete`, 5 signatures).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use tpmd_simulator::kernel_rm::wire;
use tpmd_simulator::latency::LatencyProfile;
use tpmd_simulator::proxy::{Proxy, ProxyOptions};
use tpmd_simulator::Simulator;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn call(stream: &mut UnixStream, command: &[u8]) -> Result<Vec<u8>> {
    stream.write_all(command)?;
    let mut response = vec![0u8; wire::HEADER_SIZE];
    stream.read_exact(&mut response)?;
    let size = wire::size(&response).unwrap_or_default() as usize;
    response.resize(size.max(wire::HEADER_SIZE), 0);
    stream.read_exact(&mut response[wire::HEADER_SIZE..])?;
    match wire::code(&response) {
        Some(0) => Ok(response),
        rc => Err(format!("TPM command failed: {rc:x?}").into()),
    }
}

fn password_session() -> Vec<u8> {
    let mut area = 9u32.to_be_bytes().to_vec();
    area.extend_from_slice(&[0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
    area
}

/// An ECC P-256 ECDSA signing primary under the owner hierarchy.
fn create_primary(label: u8) -> Vec<u8> {
    let mut public = vec![0, 0x23, 0, 0x0B, 0, 0x04, 0x04, 0x72, 0, 0];
    public.extend_from_slice(&[0, 0x10, 0, 0x18, 0, 0x0B, 0, 0x03, 0, 0x10]);
    public.extend_from_slice(&[0, 1, label, 0, 0]);
    let mut body = 0x4000_0001u32.to_be_bytes().to_vec();
    body.extend(password_session());
    body.extend_from_slice(&[0, 4, 0, 0, 0, 0]);
    body.extend_from_slice(&(public.len() as u16).to_be_bytes());
    body.extend(public);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    wire::frame(wire::ST_SESSIONS, 0x131, &body)
}

fn sign(key: u32) -> Vec<u8> {
    let mut body = key.to_be_bytes().to_vec();
    body.extend(password_session());
    body.extend_from_slice(&[0, 32]);
    body.extend_from_slice(&[0x5A; 32]);
    body.extend_from_slice(&[0, 0x18, 0, 0x0B, 0x80, 0x24, 0x40, 0, 0, 7, 0, 0]);
    wire::frame(wire::ST_SESSIONS, 0x15D, &body)
}

/// Commands per signature and seconds per signature with `objects` objects held.
fn measure(proxy: &Proxy, objects: u8, signatures: u32) -> Result<(u64, f64)> {
    let mut stream = UnixStream::connect(proxy.socket_path())?;
    let mut keys = Vec::new();
    for label in 0..objects.max(1) {
        let response = call(&mut stream, &create_primary(label))?;
        keys.push(wire::response_handle(&response).ok_or("no handle")?);
    }
    proxy.reset_counts();
    let started = Instant::now();
    for _ in 0..signatures {
        call(&mut stream, &sign(keys[0]))?;
    }
    let seconds = started.elapsed().as_secs_f64() / f64::from(signatures);
    let commands: u64 = proxy.counts().values().sum();
    for key in keys {
        call(&mut stream, &wire::flush_context(key))?;
    }
    Ok((commands / u64::from(signatures), seconds))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let profile = LatencyProfile::load(&args.next().unwrap_or_else(|| "discrete".into()))?;
    let signatures: u32 = args.next().map_or(Ok(5), |n| n.parse())?;
    println!(
        "latency profile {}, {signatures} ECDSA P-256 signatures per row",
        profile.name()
    );

    let raw =
        Simulator::start_temporary_with(ProxyOptions::raw_device().with_latency(profile.clone()))?;
    let raw_proxy = raw.proxy().ok_or("no proxy")?;
    let (raw_commands, raw_seconds) = measure(raw_proxy, 1, signatures)?;
    println!(
        "/dev/tpm0,   1 key loaded:  {raw_commands} TPM commands, {:.1} ms per signature (1.00)",
        raw_seconds * 1000.0
    );
    drop(raw);

    let rm = Simulator::start_temporary_with(ProxyOptions::kernel_rm().with_latency(profile))?;
    let rm_proxy = rm.proxy().ok_or("no proxy")?;
    for objects in 1..=3 {
        let (commands, seconds) = measure(rm_proxy, objects, signatures)?;
        println!(
            "/dev/tpmrm0, {objects} object(s) held: {commands} TPM commands, {:.1} ms per signature ({:.2})",
            seconds * 1000.0,
            seconds / raw_seconds
        );
    }
    Ok(())
}
