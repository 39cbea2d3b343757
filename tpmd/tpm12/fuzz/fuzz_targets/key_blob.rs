//! TPM_KEY12 / TPM_KEY, TPM_PUBKEY and TPM_STORE_ASYMKEY: parse, and re-encode what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::{Key12, PubKey, StoreAsymkey};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = Key12::from_bytes(data) {
        assert_eq!(
            key.to_bytes(),
            data,
            "a parsed blob must re-encode identically"
        );
        let _ = key.pub_data_digest();
        let _ = key.parms.rsa_parms();
        let _ = key.pcr_info();
        let _ = tpmd_tpm12::keys::public::to_rsa(&key.pubkey());
    }
    if let Ok(key) = PubKey::from_bytes(data) {
        assert_eq!(key.to_bytes(), data);
    }
    let _ = StoreAsymkey::from_bytes(data);
    let _ = tpmd_tpm12::codec::PcrInfo::decode(data, true);
    let _ = tpmd_tpm12::codec::PcrInfo::decode(data, false);
});
