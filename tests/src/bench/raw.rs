//! Raw tss-esapi loops on one key, no tpmd: the floor every ratio is taken against
//! (TPM2_Sign on a loaded key with a password session, what `tpm2_sign` does), and the
//! other ways a client can use a key, for comparison.

use std::str::FromStr;
use std::time::Instant;

use sha2::{Digest as _, Sha256};
use tpmd::backend::tpm2::blob::{KeyBlob, KeyPrivate};
use tpmd_tpm2::transport::Transport;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, Digest, HashScheme, HashcheckTicket, Private, Public, SignatureScheme,
    SymmetricDefinition,
};
use tss_esapi::traits::UnMarshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::{Context, TctiNameConf};

use super::stats::{Samples, Stats};

/// Operations each raw loop makes, untimed, before its timed ones, as the tpmd rows
/// have their warm-up: first-use costs stay out of the floor.
pub const WARM_UP: usize = 5;

/// How the raw loop authorizes its key.
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

/// What the loop does for each signature (timed as one).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RawPattern {
    /// The key loaded once; one TPM2_Sign per signature. With a password session this
    /// is the floor.
    Hot(RawSession),
    /// TPM2_Load, TPM2_Sign, TPM2_FlushContext: a client that keeps nothing loaded
    /// between operations (the stateless pattern).
    Stateless,
    /// The key's context saved once; TPM2_ContextLoad, TPM2_Sign, TPM2_FlushContext: a
    /// key swapped back in for every signature.
    Swapped,
    /// TPM2_ContextLoad and TPM2_FlushContext alone: what swapping a key in costs.
    ContextLoadOnly,
}

/// What a raw loop does, on a TPM handle `T` (a tss-esapi context, a wire connection)
/// with keys `K`.
pub(super) struct RawSteps<'a, T, K> {
    pub load: &'a dyn Fn(&mut T) -> K,
    pub sign: &'a dyn Fn(&mut T, K, usize),
    /// ContextLoad of the key's saved context.
    pub swap_in: &'a dyn Fn(&mut T) -> K,
    pub flush: &'a dyn Fn(&mut T, K),
}

/// The loop every raw way shares: `ops` operations of `pattern` (`hot`: the key loaded
/// once) timed one by one after [`WARM_UP`] untimed ones, added to `samples`.
pub(super) fn timed_loop<T, K: Copy>(
    tpm: &mut T,
    pattern: RawPattern,
    hot: K,
    steps: &RawSteps<'_, T, K>,
    ops: usize,
    samples: &mut Samples,
) {
    let step = |tpm: &mut T, i: usize| match pattern {
        RawPattern::Hot(_) => (steps.sign)(tpm, hot, i),
        RawPattern::Stateless => {
            let key = (steps.load)(tpm);
            (steps.sign)(tpm, key, i);
            (steps.flush)(tpm, key);
        }
        RawPattern::Swapped => {
            let key = (steps.swap_in)(tpm);
            (steps.sign)(tpm, key, i);
            (steps.flush)(tpm, key);
        }
        RawPattern::ContextLoadOnly => {
            let key = (steps.swap_in)(tpm);
            (steps.flush)(tpm, key);
        }
    };
    for i in 0..WARM_UP {
        step(tpm, i);
    }
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in WARM_UP..WARM_UP + ops {
        let t = Instant::now();
        step(tpm, i);
        latencies.push(t.elapsed());
    }
    samples.add(latencies, start.elapsed());
}

/// How a raw loop reaches the TPM.
pub enum RawVia {
    /// tss-esapi through a tpm2-tss TCTI configuration (`swtpm:host=...,port=...`).
    Esys(String),
    /// tpmd-tpm2's wire codec on one connection (see [`super::raw_wire`]).
    Wire(Transport),
}

/// One key (a TSS2 key file under the SRK at 0x81000001) reached one way or the other.
pub struct RawKey<'a> {
    pub via: &'a RawVia,
    pub pem: &'a [u8],
    /// The key's auth value (empty for none), given in a password session.
    pub auth: &'a [u8],
    pub scheme: RawScheme,
}

impl RawKey<'_> {
    /// `ops` signatures in the given pattern, their latencies added to `samples`.
    pub fn run(&self, pattern: RawPattern, ops: usize, samples: &mut Samples) {
        match self.via {
            RawVia::Esys(tcti) => self.run_esys(tcti, pattern, ops, samples),
            RawVia::Wire(transport) => {
                assert!(
                    pattern != RawPattern::Hot(RawSession::Hmac),
                    "the wire loops use password sessions only"
                );
                let (pem, auth) = (self.pem, self.auth);
                super::raw_wire::run(transport, pem, auth, self.scheme, pattern, ops, samples)
            }
        }
    }

    fn run_esys(&self, tcti: &str, pattern: RawPattern, ops: usize, samples: &mut Samples) {
        let blob = KeyBlob::parse(self.pem).unwrap();
        let KeyPrivate::Loadable(private) = &blob.private else {
            panic!("expected a loadable key")
        };
        let private = Private::try_from(
            tpmd_api::marshal::parse_tpm2b(private, "private")
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        let public = Public::unmarshall(
            tpmd_api::marshal::parse_tpm2b(&blob.public_bytes, "public").unwrap(),
        )
        .unwrap();
        let mut ctx = Context::new(TctiNameConf::from_str(tcti).unwrap())
            .unwrap_or_else(|e| panic!("{tcti}: {e}"));
        let srk = ctx
            .execute_without_session(|c| {
                c.tr_from_tpm_public(TpmHandle::Persistent(
                    PersistentTpmHandle::new(0x8100_0001).unwrap(),
                ))
            })
            .unwrap();
        let auth = Auth::try_from(self.auth.to_vec()).unwrap();
        let hmac = match pattern {
            RawPattern::Hot(RawSession::Hmac) => ctx
                .start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Hmac,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
                .unwrap(),
            _ => None,
        };
        ctx.set_sessions((Some(AuthSession::Password), None, None));
        let load = |ctx: &mut Context| {
            let key = ctx
                .load(srk.into(), private.clone(), public.clone())
                .unwrap();
            ctx.tr_set_auth(key.into(), auth.clone()).unwrap();
            key
        };
        let hot = load(&mut ctx);
        if hmac.is_some() {
            ctx.set_sessions((hmac, None, None));
        }
        let saved = matches!(pattern, RawPattern::Swapped | RawPattern::ContextLoadOnly)
            .then(|| ctx.context_save(hot.into()).unwrap());
        // Only the hot loop keeps its key loaded: through a kernel resource manager a
        // loaded object is swapped around every command of the connection.
        let hot_kept = matches!(pattern, RawPattern::Hot(_));
        if !hot_kept {
            ctx.flush_context(hot.into()).unwrap();
        }
        let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .unwrap();
        let hash_scheme = HashScheme::new(HashingAlgorithm::Sha256);
        let scheme = match self.scheme {
            RawScheme::RsaPkcs1 => SignatureScheme::RsaSsa { hash_scheme },
            RawScheme::Ecdsa => SignatureScheme::EcDsa { hash_scheme },
        };
        let sign = |ctx: &mut Context, key: KeyHandle, i: usize| {
            let digest = Digest::try_from(Sha256::digest(i.to_be_bytes()).to_vec()).unwrap();
            ctx.sign(key, digest, scheme, ticket.clone()).unwrap();
        };
        let swap_in = |ctx: &mut Context| {
            let saved = saved.clone().expect("saved for this pattern");
            let key = KeyHandle::from(ctx.context_load(saved).unwrap());
            ctx.tr_set_auth(key.into(), auth.clone()).unwrap();
            key
        };
        let flush = |ctx: &mut Context, key: KeyHandle| {
            ctx.flush_context(ObjectHandle::from(key)).unwrap();
        };
        let steps = RawSteps {
            load: &load,
            sign: &sign,
            swap_in: &swap_in,
            flush: &flush,
        };
        timed_loop(&mut ctx, pattern, hot, &steps, ops, samples);
        if hot_kept {
            ctx.flush_context(hot.into()).unwrap();
        }
        if let Some(session) = hmac {
            ctx.flush_context(SessionHandle::from(session).into())
                .unwrap();
        }
    }

    pub fn stats(&self, pattern: RawPattern, ops: usize) -> Stats {
        let mut samples = Samples::default();
        self.run(pattern, ops, &mut samples);
        samples.stats()
    }
}
