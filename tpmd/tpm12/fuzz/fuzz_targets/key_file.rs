//! TSS KEY BLOB PEM, its DER, and raw blobs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::keys::file;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = file::read(data) {
        let written = file::write(&parsed.blob, parsed.format).expect("re-encode");
        let again = file::read(&written).expect("re-read");
        assert_eq!(again.blob, parsed.blob);
    }
});
