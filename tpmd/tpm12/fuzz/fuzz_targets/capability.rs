//! GetCapability responses and the structures inside them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::capability as cap;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = cap::parse_capability(data) {
        let _ = cap::parse_u32(&resp);
    }
    let _ = cap::parse_u32(data);
    let _ = cap::parse_bool(data);
    if let Ok(v) = cap::parse_version_info(data) {
        let _ = v.describe();
    }
    let _ = cap::parse_key_handles(data);
    let _ = cap::parse_nv_list(data);
    let _ = cap::parse_permanent_flags(data);
    let _ = cap::parse_da_info(data);
});
