//! A signing client for the multi-user tests and the fairness benchmark, run as another
//! uid (`setpriv --reuid`): signs with one key file over D-Bus, many calls in flight, and
//! prints what happened as one JSON object: outcomes by kind, the first message of each
//! kind, and the latencies of the signatures that succeeded.
//!
//!   tpmd-load --key K [--auth-file F] [--ops N | --until-file P] [--parallel C]
//!             [--connections K] [--interleave-key K2 [--interleave-auth-file F2]]
//!   tpmd-load --generate TYPE [--ops N | --until-file P] [--parallel C]
//!
//! tpmd is found through TPMD_BUS_ADDRESS. `--ops 0` with `--until-file P` signs until P
//! exists. `--interleave-key` signs with a second key after every call with the first.
//! `--generate` makes keys of TYPE (e.g. rsa2048) instead of signing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest as _, Sha256};
use tpmd_api::dbus::{scheme, GenerateOptions};
use tpmd_api::public::KeyParams;
use tpmd_api::{Daemon1Proxy, DaemonError};

struct Args {
    key: PathBuf,
    generate: Option<String>,
    auth_file: Option<PathBuf>,
    interleave_key: Option<PathBuf>,
    interleave_auth_file: Option<PathBuf>,
    ops: usize,
    until_file: Option<PathBuf>,
    parallel: usize,
    connections: usize,
}

fn usage(problem: &str) -> ! {
    eprintln!("tpmd-load: {problem}; usage: tpmd-load (--key K [--auth-file F] | --generate TYPE) [--ops N | --until-file P] [--parallel C] [--connections K] [--interleave-key K2 [--interleave-auth-file F2]]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        key: PathBuf::new(),
        generate: None,
        auth_file: None,
        interleave_key: None,
        interleave_auth_file: None,
        ops: 1,
        until_file: None,
        parallel: 1,
        connections: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| {
            v.parse::<usize>()
                .unwrap_or_else(|_| usage(&format!("{v:?} is not a number")))
        };
        match flag.as_str() {
            "--key" => args.key = value().into(),
            "--generate" => args.generate = Some(value()),
            "--auth-file" => args.auth_file = Some(value().into()),
            "--interleave-key" => args.interleave_key = Some(value().into()),
            "--interleave-auth-file" => args.interleave_auth_file = Some(value().into()),
            "--ops" => args.ops = number(value()),
            "--until-file" => args.until_file = Some(value().into()),
            "--parallel" => args.parallel = number(value()).max(1),
            "--connections" => args.connections = number(value()),
            other => usage(&format!("unknown option {other}")),
        }
    }
    if args.key.as_os_str().is_empty() == args.generate.is_none() {
        usage("give --key or --generate");
    }
    if args.ops == 0 && args.until_file.is_none() {
        usage("--ops 0 needs --until-file");
    }
    if args.connections == 0 {
        // The system bus lets a connection have 128 calls pending.
        args.connections = args.parallel.div_ceil(100).max(1);
    }
    args
}

/// What each call does: sign with a key, or make a new key.
enum Signer {
    Sign {
        key: Vec<u8>,
        auth: Vec<u8>,
        scheme: &'static str,
    },
    Generate(String),
}

impl Signer {
    fn load(key: &PathBuf, auth_file: &Option<PathBuf>) -> Signer {
        let key = std::fs::read(key).unwrap_or_else(|e| usage(&format!("{}: {e}", key.display())));
        let auth = auth_file
            .as_ref()
            .map(|f| std::fs::read(f).unwrap_or_else(|e| usage(&format!("{}: {e}", f.display()))))
            .unwrap_or_default();
        let public = tpmd_api::client::key_file_public(&key)
            .unwrap_or_else(|e| usage(&format!("not a TPM key file: {e}")));
        let scheme = match public.key {
            KeyParams::Rsa { .. } => scheme::RSA_PKCS1,
            KeyParams::Ecc { .. } => scheme::ECDSA,
        };
        Signer::Sign { key, auth, scheme }
    }

    async fn sign(&self, proxy: &Daemon1Proxy<'_>, n: usize) -> Result<Vec<u8>, DaemonError> {
        match self {
            Signer::Sign { key, auth, scheme } => {
                let digest = Sha256::digest(n.to_be_bytes());
                tpmd_tests::calls::sign(proxy, key, auth, scheme, "sha256", &digest).await
            }
            Signer::Generate(key_type) => {
                proxy
                    .generate(key_type, &[], GenerateOptions::default())
                    .await
            }
        }
    }
}

/// What a run of calls with one key did.
#[derive(Default)]
struct Outcomes {
    counts: BTreeMap<&'static str, u64>,
    first_message: BTreeMap<&'static str, String>,
    latencies: Vec<Duration>,
}

impl Outcomes {
    fn record(&mut self, result: Result<Vec<u8>, DaemonError>, took: Duration) {
        let kind = match &result {
            Ok(_) => "ok",
            Err(DaemonError::AuthFailed(_)) => "auth-failed",
            Err(DaemonError::RateLimited(_)) => "rate-limited",
            Err(DaemonError::Lockout(_)) => "lockout",
            Err(DaemonError::Busy(_)) => "busy",
            Err(_) => "other",
        };
        *self.counts.entry(kind).or_default() += 1;
        match result {
            Ok(_) => self.latencies.push(took),
            Err(e) => {
                self.first_message
                    .entry(kind)
                    .or_insert_with(|| e.message());
            }
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let pick = |q: f64| {
            (!sorted.is_empty())
                .then(|| sorted[((sorted.len() as f64 - 1.0) * q) as usize].as_micros() as u64)
        };
        json!({
            "counts": self.counts,
            "messages": self.first_message,
            "latency-us": { "p50": pick(0.50), "p99": pick(0.99), "n": sorted.len() },
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let address = std::env::var(tpmd_api::dbus::ADDRESS_ENV)
        .unwrap_or_else(|_| usage("set TPMD_BUS_ADDRESS"));
    let main_key = Arc::new(match &args.generate {
        Some(key_type) => Signer::Generate(key_type.clone()),
        None => Signer::load(&args.key, &args.auth_file),
    });
    let interleaved = args
        .interleave_key
        .as_ref()
        .map(|k| Arc::new(Signer::load(k, &args.interleave_auth_file)));
    let mut proxies = Vec::new();
    for _ in 0..args.connections {
        let conn = zbus::connection::Builder::address(address.as_str())
            .build()
            .await
            .unwrap_or_else(|e| usage(&format!("cannot connect to {address}: {e}")));
        proxies.push(Daemon1Proxy::new(&conn).await.unwrap());
    }
    let next = Arc::new(AtomicUsize::new(0));
    let main_out = Arc::new(Mutex::new(Outcomes::default()));
    let inter_out = Arc::new(Mutex::new(Outcomes::default()));
    let mut tasks = Vec::new();
    for task in 0..args.parallel {
        let proxy = proxies[task % proxies.len()].clone();
        let (main_key, interleaved) = (main_key.clone(), interleaved.clone());
        let (next, main_out, inter_out) = (next.clone(), main_out.clone(), inter_out.clone());
        let (ops, until) = (args.ops, args.until_file.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let done = match &until {
                    Some(file) if ops == 0 => file.exists(),
                    _ => n >= ops,
                };
                if done {
                    break;
                }
                let t = Instant::now();
                let result = main_key.sign(&proxy, n).await;
                main_out.lock().unwrap().record(result, t.elapsed());
                if let Some(other) = &interleaved {
                    let t = Instant::now();
                    let result = other.sign(&proxy, n).await;
                    inter_out.lock().unwrap().record(result, t.elapsed());
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let main_json = main_out.lock().unwrap().to_json();
    let mut out = json!({ "main": main_json });
    if interleaved.is_some() {
        out["interleaved"] = inter_out.lock().unwrap().to_json();
    }
    println!("{out}");
}
