//! What the benchmark programs share: latency statistics and the raw TPM 2.0 floor every
//! ratio is taken against (TPM2_Sign on a loaded key through tss-esapi, no tpmd).

// A benchmark that cannot set itself up has nothing to report: failing loudly is right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use tpmd_tpm2::transport::OpenEsys;

use sha2::{Digest as _, Sha256};
use tpmd::backend::tpm2::blob::{KeyBlob, KeyPrivate};
use tpmd_simulator::Simulator;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{PersistentTpmHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Digest, HashScheme, HashcheckTicket, Private, Public, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::traits::UnMarshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

/// Throughput and latency of one benchmark row.
pub struct Stats {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

pub fn stats(mut latencies: Vec<Duration>, wall: Duration) -> Stats {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Stats {
        per_second: latencies.len() as f64 / wall.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Latencies gathered in several batches (rounds), and the time the batches took in all:
/// rows measured in turns, so that the simulator's drift over a run hits them alike.
#[derive(Default)]
pub struct Samples {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Samples {
    pub fn add(&mut self, latencies: Vec<Duration>, wall: Duration) {
        self.latencies.extend(latencies);
        self.wall += wall;
    }

    pub fn stats(&self) -> Stats {
        stats(self.latencies.clone(), self.wall)
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How the raw loop authorizes its key (empty auth value).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RawSession {
    /// A password session, as `tpm2_sign` uses: the least work for the TPM.
    Password,
    /// An unsalted HMAC session started once.
    Hmac,
}

/// Which signature the raw loop makes, over SHA-256 digests.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RawScheme {
    RsaPkcs1,
    Ecdsa,
}

/// Raw TPM2_Sign through tss-esapi on the loaded key `key_pem` (a TSS2 key file under the
/// SRK at 0x81000001), the session set once: the floor of every benchmark.
pub fn raw_tpm2_floor(
    sim: &Simulator,
    key_pem: &[u8],
    ops: usize,
    how: RawSession,
    scheme: RawScheme,
) -> Stats {
    let mut samples = Samples::default();
    raw_tpm2_samples(sim, key_pem, ops, how, scheme, &mut samples);
    samples.stats()
}

/// [`raw_tpm2_floor`], adding its latencies to `samples`.
pub fn raw_tpm2_samples(
    sim: &Simulator,
    key_pem: &[u8],
    ops: usize,
    how: RawSession,
    scheme: RawScheme,
    samples: &mut Samples,
) {
    let blob = KeyBlob::parse(key_pem).unwrap();
    let KeyPrivate::Loadable(private) = &blob.private else {
        panic!("expected a loadable key")
    };
    let private = Private::try_from(
        tpmd_api::marshal::parse_tpm2b(private, "private")
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let public =
        Public::unmarshall(tpmd_api::marshal::parse_tpm2b(&blob.public_bytes, "public").unwrap())
            .unwrap();
    let mut ctx = sim.transport().open().unwrap();
    let srk = ctx
        .execute_without_session(|c| {
            c.tr_from_tpm_public(TpmHandle::Persistent(
                PersistentTpmHandle::new(0x8100_0001).unwrap(),
            ))
        })
        .unwrap();
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Hmac,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .unwrap();
    ctx.set_sessions((session, None, None));
    let key = ctx.load(srk.into(), private, public).unwrap();
    if how == RawSession::Password {
        ctx.set_sessions((Some(AuthSession::Password), None, None));
    }
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .unwrap();
    let hash_scheme = HashScheme::new(HashingAlgorithm::Sha256);
    let scheme = match scheme {
        RawScheme::RsaPkcs1 => SignatureScheme::RsaSsa { hash_scheme },
        RawScheme::Ecdsa => SignatureScheme::EcDsa { hash_scheme },
    };
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let digest = Digest::try_from(Sha256::digest(i.to_be_bytes()).to_vec()).unwrap();
        let t = Instant::now();
        ctx.sign(key, digest, scheme, ticket.clone()).unwrap();
        latencies.push(t.elapsed());
    }
    let wall = start.elapsed();
    ctx.flush_context(key.into()).unwrap();
    if let Some(session) = session {
        ctx.flush_context(SessionHandle::from(session).into())
            .unwrap();
    }
    samples.add(latencies, wall);
}

/// `--ops N` from the command line: signatures per row, `default` when absent.
pub fn ops_arg(default: usize) -> usize {
    usize_arg("--ops", default)
}

/// `NAME N` from the command line, `default` when absent.
pub fn usize_arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A figures table: one row per measurement, each with its ratio to the floor's rate.
pub struct Table {
    name_width: usize,
    floor_rate: f64,
}

impl Table {
    /// Prints the column headings.
    pub fn start(name_width: usize, floor_rate: f64) -> Table {
        println!(
            "{:<name_width$} {:>9} {:>9} {:>9} {:>8}",
            "", "signs/s", "p50 ms", "p99 ms", "ratio"
        );
        Table {
            name_width,
            floor_rate,
        }
    }

    pub fn row(&self, name: &str, s: &Stats) {
        println!(
            "{:<width$} {:>9.1} {:>9.2} {:>9.2} {:>8.2}",
            name,
            s.per_second,
            ms(s.p50),
            ms(s.p99),
            s.per_second / self.floor_rate,
            width = self.name_width
        );
    }
}
