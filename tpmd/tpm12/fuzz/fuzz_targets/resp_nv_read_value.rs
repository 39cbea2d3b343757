//! Response parser fuzz target: `pcr_nv::parse_nv_read_value`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::pcr_nv;

fuzz_target!(|data: &[u8]| {
    let _ = pcr_nv::parse_nv_read_value(data);
});
