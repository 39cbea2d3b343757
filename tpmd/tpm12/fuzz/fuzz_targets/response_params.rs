//! Every per-command response parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::ops::{keys, owner, pcr_nv, session};

fuzz_target!(|data: &[u8]| {
    let _ = session::parse_oiap(data);
    let _ = session::parse_osap(data);
    let _ = session::parse_get_random(data);
    let _ = keys::parse_pub_key(data);
    let _ = keys::parse_sign(data);
    let _ = keys::parse_unbind(data);
    let _ = keys::parse_create_wrap_key(data);
    let _ = keys::parse_save_context(data);
    let _ = owner::parse_read_pubek(data, &[0; 20]);
    let _ = owner::parse_owner_read_internal_pub(data);
    let _ = owner::parse_take_ownership(data);
    let _ = pcr_nv::parse_pcr_value(data);
    let _ = pcr_nv::parse_nv_read_value(data);
});
