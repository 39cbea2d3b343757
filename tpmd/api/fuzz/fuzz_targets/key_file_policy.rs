//! A TSS2 key file's `policy [1]` and `authPolicy [3]`: parsed, written back and parsed
//! again to the same value, and every statement's digest computed without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_api::fuzzing::check_key_file;

fuzz_target!(|data: &[u8]| check_key_file(data));
