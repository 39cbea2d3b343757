//! A signed policy file (`TSS2 AUTH POLICY` PEM or its DER).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_api::fuzzing::check_auth_policy_file;

fuzz_target!(|data: &[u8]| check_auth_policy_file(data));
