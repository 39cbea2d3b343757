//! Response parser fuzz target: `parse_u32 / parse_bool`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::capability;

fuzz_target!(|data: &[u8]| {
    let _ = (capability::parse_u32(data), capability::parse_bool(data));
});
