//! What the benchmark programs share: statistics and the figures table, the raw
//! tss-esapi floor every ratio is taken against, the TPM they run on (swtpm or a model
//! of a real machine's), the key types, the signing loops of each client, and the
//! tpm2-pkcs11 peer.

// A benchmark that cannot set itself up has nothing to report: failing loudly is right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod args;
pub mod clients;
pub mod kind;
pub mod model;
pub mod raw;
pub mod raw_wire;
pub mod stats;
pub mod tpm2_pkcs11;

pub use args::{flag, ops_arg, string_arg, usize_arg};
pub use kind::{Kind, ECDSA, KINDS, RSA};
pub use model::{commands_per_op, reset_counts, Model};
pub use raw::{RawKey, RawPattern, RawScheme, RawSession, RawVia, WARM_UP};
pub use stats::{ms, paired, stats, Samples, Stats, Table};
