//! TPM2_GetRandom.

use tpmd_api::marshal::put_u16;

use crate::wire::{cc, Command, Response, WireError};

/// TPM2_GetRandom of `bytes` bytes. The TPM answers with at most the size of its largest
/// digest, so callers ask again for the rest.
pub fn get_random(bytes: u16) -> Command {
    let mut cmd = Command::new(cc::GET_RANDOM, &[], 0, 0);
    put_u16(&mut cmd.params, bytes);
    cmd
}

/// The random bytes (a TPM2B_DIGEST), possibly fewer than asked for.
pub fn parse_get_random(response: &Response) -> Result<Vec<u8>, WireError> {
    let mut r = response.reader();
    let bytes = r.read_tpm2b("randomBytes")?.to_vec();
    r.finish("GetRandom response")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_response_bytes() {
        let cmd = get_random(48);
        assert_eq!(
            cmd.encode(&[]),
            [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 48]
        );
        let ok = [0x80, 0x01, 0, 0, 0, 15, 0, 0, 0, 0, 0, 3, 7, 8, 9];
        let response = Response::decode(&cmd, &ok).unwrap();
        assert_eq!(parse_get_random(&response).unwrap(), vec![7, 8, 9]);
        let short = [0x80, 0x01, 0, 0, 0, 14, 0, 0, 0, 0, 0, 3, 7, 8];
        let truncated = Response::decode(&cmd, &short).unwrap();
        assert!(parse_get_random(&truncated).is_err());
        let extra = [0x80, 0x01, 0, 0, 0, 14, 0, 0, 0, 0, 0, 1, 7, 8];
        let trailing = Response::decode(&cmd, &extra).unwrap();
        assert!(parse_get_random(&trailing).is_err());
    }
}
