//! Response parser fuzz target: `keys::parse_create_wrap_key`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::keys;

fuzz_target!(|data: &[u8]| {
    let _ = keys::parse_create_wrap_key(data);
});
