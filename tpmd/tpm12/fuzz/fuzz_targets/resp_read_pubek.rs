//! Response parser fuzz target: `owner::parse_read_pubek`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::owner;

fuzz_target!(|data: &[u8]| {
    let _ = owner::parse_read_pubek(data, &[0; 20]);
});
