//! The raw loops on a modelled TPM (kernel RM or latency model), written with tpmd-tpm2's
//! wire codec over one connection to the simulator's proxy: the same commands the
//! tss-esapi loops send (password sessions), with no TSS library in the way.
//!
//! tss-esapi is not used there: on the kernel RM model a client must keep one connection
//! (one `/dev/tpmrm0` space), which leaves tss-esapi the mssim TCTI and its extra framing;
//! the wire codec sends the bare commands on the proxy's own socket, as tpmd does.

use sha2::{Digest as _, Sha256};
use tpmd::backend::tpm2::blob::{KeyBlob, KeyPrivate};
use tpmd_api::marshal::TPM_ALG_SHA256;
use tpmd_tpm2::transport::{Connection, Transport};
use tpmd_tpm2::wire::ops;
use tpmd_tpm2::wire::{AuthCommand, Command, Response};

use super::raw::{timed_loop, RawPattern, RawScheme, RawSteps};
use super::stats::Samples;

const SRK: u32 = 0x8100_0001;

struct Tpm(Connection);

impl Tpm {
    /// Sends `command` with a password session per auth handle (`auths`); panics on
    /// any failure: a benchmark that cannot sign has nothing to report.
    fn call(&mut self, command: &Command, auths: &[&[u8]]) -> Response {
        let auths: Vec<AuthCommand> = auths.iter().map(|a| AuthCommand::password(a)).collect();
        let bytes = self.0.transmit(&command.encode(&auths)).unwrap();
        let response = Response::decode(command, &bytes).unwrap();
        assert_eq!(
            response.rc, 0,
            "command {:#x} failed: {:#x}",
            command.code, response.rc
        );
        response
    }
}

/// [`super::RawKey::run`] on `transport`.
pub fn run(
    transport: &Transport,
    pem: &[u8],
    auth: &[u8],
    scheme: RawScheme,
    pattern: RawPattern,
    ops: usize,
    samples: &mut Samples,
) {
    let blob = KeyBlob::parse(pem).unwrap();
    let KeyPrivate::Loadable(private) = &blob.private else {
        panic!("expected a loadable key")
    };
    let mut tpm = Tpm(Connection::open(transport, None).unwrap());
    let load = ops::load(SRK, private, &blob.public_bytes);
    let load_key = |tpm: &mut Tpm| ops::returned_handle(&tpm.call(&load, &[b""])).unwrap();
    let hot = load_key(&mut tpm);
    let saved = matches!(pattern, RawPattern::Swapped | RawPattern::ContextLoadOnly).then(|| {
        let response = tpm.call(&ops::context_save(hot), &[]);
        ops::parse_context_save(&response).unwrap()
    });
    // Only the hot loop keeps its key loaded: through a kernel resource manager a loaded
    // object is swapped around every command of the connection.
    let hot_kept = matches!(pattern, RawPattern::Hot(_));
    if !hot_kept {
        tpm.call(&ops::flush_context(hot), &[]);
    }
    let scheme = match scheme {
        RawScheme::RsaPkcs1 => ops::SignScheme::RsaSsa,
        RawScheme::Ecdsa => ops::SignScheme::Ecdsa,
    };
    let sign = |tpm: &mut Tpm, key: u32, i: usize| {
        let digest = Sha256::digest(i.to_be_bytes());
        tpm.call(&ops::sign(key, &digest, scheme, TPM_ALG_SHA256), &[auth]);
    };
    let swap_in = |tpm: &mut Tpm| {
        let saved = saved.as_deref().expect("saved for this pattern");
        ops::returned_handle(&tpm.call(&ops::context_load(saved), &[])).unwrap()
    };
    let flush = |tpm: &mut Tpm, key: u32| {
        tpm.call(&ops::flush_context(key), &[]);
    };
    let steps = RawSteps {
        load: &load_key,
        sign: &sign,
        swap_in: &swap_in,
        flush: &flush,
    };
    timed_loop(&mut tpm, pattern, hot, &steps, ops, samples);
    if hot_kept {
        flush(&mut tpm, hot);
    }
}
