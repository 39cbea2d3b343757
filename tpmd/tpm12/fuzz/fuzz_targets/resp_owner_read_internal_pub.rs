//! Response parser fuzz target: `owner::parse_owner_read_internal_pub`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::owner;

fuzz_target!(|data: &[u8]| {
    let _ = owner::parse_owner_read_internal_pub(data);
});
