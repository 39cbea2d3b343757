//! The raw TPM 1.2 signing floor on a swtpm 1.2: sign requests per second through our
//! codec and client, with and without key authorization (one reused OIAP session).
//! Start it as `cargo run --release -p tpmd-tpm12 --example raw_sign [seconds]`.

use std::time::{Duration, Instant};

use tpmd_simulator::{Family, Simulator};
use tpmd_tpm12::client::{Tpm12, Transport};
use tpmd_tpm12::codec::AuthSecret;
use tpmd_tpm12::keys::digest_info::{digest_info, Hash};
use tpmd_tpm12::keys::wrap::{generate_template, Usage};

fn rate(
    tpm: &mut Tpm12,
    handle: u32,
    auth: Option<&AuthSecret>,
    seconds: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let info = digest_info(Hash::Sha256, &[7; 32]).ok_or("digest")?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        tpm.sign(handle, auth, &info)?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let sim = Simulator::start_in_tempdir(Family::Tpm12, None, true)?;
    let mut tpm = Tpm12::connect(Transport::swtpm_tcp(sim.port()))?;
    let auth = AuthSecret::from_password(b"bench");
    let with_auth =
        tpm.create_wrap_key(&generate_template(2048, Usage::Legacy, false, true), &auth)?;
    let no_auth = tpm.create_wrap_key(
        &generate_template(2048, Usage::Legacy, false, false),
        &AuthSecret::from_password_or_well_known(b""),
    )?;
    let h1 = tpm.load_key(&with_auth.to_bytes())?;
    let h2 = tpm.load_key(&no_auth.to_bytes())?;
    let a = rate(&mut tpm, h1, Some(&auth), seconds)?;
    let b = rate(&mut tpm, h2, None, seconds)?;
    println!("raw TPM 1.2 RSA-2048 sign (OIAP, reused session): {a:.1}/s");
    println!("raw TPM 1.2 RSA-2048 sign (no auth):               {b:.1}/s");
    println!("OIAP sessions opened: {}", tpm.stats().oiap_opened);
    let blob = no_auth.to_bytes();
    let start = Instant::now();
    for _ in 0..50 {
        let h = tpm.load_key(&blob)?;
        tpm.flush_key(h)?;
    }
    let load = start.elapsed().as_secs_f64() / 50.0;
    let context = tpm.save_key_context(h2)?;
    let start = Instant::now();
    for _ in 0..50 {
        let h = tpm.load_key_context(&context)?;
        tpm.flush_key(h)?;
    }
    let context_load = start.elapsed().as_secs_f64() / 50.0;
    println!(
        "reload an evicted key: LoadKey2 {:.2} ms, LoadContext {:.2} ms",
        load * 1e3,
        context_load * 1e3
    );
    Ok(())
}
