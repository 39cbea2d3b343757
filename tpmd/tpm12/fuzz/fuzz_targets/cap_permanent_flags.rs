//! Response parser fuzz target: `capability::parse_permanent_flags`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::capability;

fuzz_target!(|data: &[u8]| {
    let _ = capability::parse_permanent_flags(data);
});
