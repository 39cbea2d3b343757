//! Response parser fuzz target: `session::parse_get_random`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::session;

fuzz_target!(|data: &[u8]| {
    let _ = session::parse_get_random(data);
});
