//! Response parser fuzz target: `session::parse_osap`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::session;

fuzz_target!(|data: &[u8]| {
    let _ = session::parse_osap(data);
});
