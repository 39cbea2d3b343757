//! One policy statement's body under each command code tpmd runs (Authorize::parse,
//! PolicyPCR's selection, PolicyOR's branches, PolicySecret).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_api::fuzzing::check_statement_body;

fuzz_target!(|data: &[u8]| check_statement_body(data));
