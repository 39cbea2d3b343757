//! Response framing and HMAC verification: header, auth blocks, handles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpmd_tpm12::codec::frame::{parse_response, Command};
use tpmd_tpm12::codec::AuthSecret;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let mut cmd = Command::new(0x41);
    cmd.response_handles = usize::from(selector & 1);
    let auths = usize::from((selector >> 1) % 3);
    if let Ok(resp) = parse_response(bytes, &cmd, auths) {
        let _ = resp.handles();
        let _ = resp.params();
        for i in 0..auths + 1 {
            let _ = resp.verify(i, &AuthSecret::from_raw([0; 20]), &[0; 20]);
        }
    }
});
