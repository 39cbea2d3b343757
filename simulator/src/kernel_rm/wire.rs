//! TPM 2.0 command and response framing, as far as a resource manager needs it: headers,
//! the handle area, the few commands the kernel sends on its own, and the error answers
//! the model gives in place of a failed `write()`. No I/O.

/// tag (2) + size (4) + command or response code (4).
pub const HEADER_SIZE: usize = 10;
/// The kernel's buffer for one command or response (`TPM_BUFSIZE`).
pub const MAX_COMMAND_SIZE: usize = 4096;

pub const ST_NO_SESSIONS: u16 = 0x8001;
pub const ST_SESSIONS: u16 = 0x8002;

pub const CC_CONTEXT_LOAD: u32 = 0x161;
pub const CC_CONTEXT_SAVE: u32 = 0x162;
pub const CC_FLUSH_CONTEXT: u32 = 0x165;
pub const CC_GET_CAPABILITY: u32 = 0x17A;
pub const CC_FIRST: u32 = 0x11F;

pub const CAP_COMMANDS: u32 = 2;
pub const CAP_HANDLES: u32 = 1;
pub const CAP_TPM_PROPERTIES: u32 = 6;
pub const PT_TOTAL_COMMANDS: u32 = 0x100 + 41;

pub const HT_MASK: u32 = 0xFF00_0000;
pub const HT_HMAC_SESSION: u32 = 0x0200_0000;
pub const HT_POLICY_SESSION: u32 = 0x0300_0000;
pub const HT_TRANSIENT: u32 = 0x8000_0000;

pub const RC_SUCCESS: u32 = 0;
/// TPM_RC_HANDLE (format 1, before the handle/parameter number is added).
pub const RC_HANDLE: u32 = 0x08B;
pub const RC_COMMAND_CODE: u32 = 0x143;
pub const RC_REFERENCE_H0: u32 = 0x910;

/// The layer the kernel puts on response codes it makes up itself
/// (`TSS2_RESMGR_TPM_RC_LAYER` in the kernel's tpm.h).
pub const KERNEL_RC_LAYER: u32 = 0x000B_0000;

/// Marks the model's answer to a command that real `/dev/tpmrm0` would refuse with a
/// failed `write()`: `KERNEL_WRITE_ERROR | errno`. A real TPM code never sets bits 12 to
/// 31, and the kernel's own made-up code (`KERNEL_RC_LAYER | RC_COMMAND_CODE`) never sets
/// bits 12 to 15, so the two cannot be confused.
pub const KERNEL_WRITE_ERROR: u32 = KERNEL_RC_LAYER | 0xF000;

/// TPMA_CC: number of handles in the command's handle area (bits 25..27).
pub fn cc_attr_handles(attrs: u32) -> usize {
    ((attrs >> 25) & 0x7) as usize
}

/// TPMA_CC: whether the response starts with a handle (bit 28).
pub fn cc_attr_returns_handle(attrs: u32) -> bool {
    (attrs >> 28) & 1 == 1
}

/// TPMA_CC: the command code the attributes describe (index plus the vendor bit).
pub fn cc_attr_code(attrs: u32) -> u32 {
    attrs & (0xFFFF | 1 << 29)
}

pub fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

pub fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

pub fn write_u32(buf: &mut [u8], at: usize, value: u32) -> Option<()> {
    let bytes = buf.get_mut(at..at.checked_add(4)?)?;
    bytes.copy_from_slice(&value.to_be_bytes());
    Some(())
}

/// The tag of a command or response.
pub fn tag(buf: &[u8]) -> Option<u16> {
    read_u16(buf, 0)
}

/// The size field of a command or response header.
pub fn size(buf: &[u8]) -> Option<u32> {
    read_u32(buf, 2)
}

/// The command code of a command, or the response code of a response.
pub fn code(buf: &[u8]) -> Option<u32> {
    read_u32(buf, 6)
}

/// A whole command or response: header with `tag` and `code`, then `body`.
pub fn frame(tag: u16, code: u32, body: &[u8]) -> Vec<u8> {
    let total = HEADER_SIZE + body.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn context_save(handle: u32) -> Vec<u8> {
    frame(ST_NO_SESSIONS, CC_CONTEXT_SAVE, &handle.to_be_bytes())
}

/// `context` is a TPMS_CONTEXT exactly as ContextSave returned it after the header.
pub fn context_load(context: &[u8]) -> Vec<u8> {
    frame(ST_NO_SESSIONS, CC_CONTEXT_LOAD, context)
}

pub fn flush_context(handle: u32) -> Vec<u8> {
    frame(ST_NO_SESSIONS, CC_FLUSH_CONTEXT, &handle.to_be_bytes())
}

pub fn get_capability(capability: u32, property: u32, count: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(12);
    body.extend_from_slice(&capability.to_be_bytes());
    body.extend_from_slice(&property.to_be_bytes());
    body.extend_from_slice(&count.to_be_bytes());
    frame(ST_NO_SESSIONS, CC_GET_CAPABILITY, &body)
}

/// A header-only response carrying `rc`.
pub fn error_response(rc: u32) -> Vec<u8> {
    frame(ST_NO_SESSIONS, rc, &[])
}

/// What real `/dev/tpmrm0` answers itself to a command code the TPM does not list.
pub fn unsupported_command_response() -> Vec<u8> {
    error_response(KERNEL_RC_LAYER | RC_COMMAND_CODE)
}

/// The model's stand-in for a `write()` that failed with `errno`.
pub fn write_error_response(errno: i32) -> Vec<u8> {
    error_response(KERNEL_WRITE_ERROR | (errno as u32 & 0xFFF))
}

/// The errno of a [`write_error_response`], if `rc` is one.
pub fn write_errno(rc: u32) -> Option<i32> {
    (rc & 0xFFFF_F000 == KERNEL_WRITE_ERROR).then_some((rc & 0xFFF) as i32)
}

/// The kernel's `tpm2_rc_value`: a format-1 code without its handle, session or
/// parameter number.
pub fn rc_value(rc: u32) -> u32 {
    if rc & 0x80 != 0 {
        rc & 0xBF
    } else {
        rc
    }
}

/// The TPMS_CONTEXT that a successful ContextSave response carries.
pub fn saved_context(response: &[u8]) -> Option<&[u8]> {
    response.get(HEADER_SIZE..)
}

/// The handle a response carries right after its header (ContextLoad, CreatePrimary,
/// Load, StartAuthSession...).
pub fn response_handle(response: &[u8]) -> Option<u32> {
    read_u32(response, HEADER_SIZE)
}

/// TPM_CAP_COMMANDS or TPM_CAP_TPM_PROPERTIES data from a GetCapability response:
/// (moreData, the list's u32 words).
pub fn capability_words(response: &[u8], capability: u32) -> Option<(bool, Vec<u32>)> {
    if code(response)? != RC_SUCCESS || read_u32(response, HEADER_SIZE + 1)? != capability {
        return None;
    }
    let more = *response.get(HEADER_SIZE)? != 0;
    let count = read_u32(response, HEADER_SIZE + 5)? as usize;
    let per_item = if capability == CAP_TPM_PROPERTIES {
        2
    } else {
        1
    };
    let words = (0..count.checked_mul(per_item)?)
        .map(|i| read_u32(response, HEADER_SIZE + 9 + 4 * i))
        .collect::<Option<Vec<u32>>>()?;
    Some((more, words))
}

/// Which kind of key a command works with, when the command or its response shows it.
/// Latency profiles use it: RSA and ECC operations differ by a factor of several on
/// real TPMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ecc,
}

const ALG_RSA: u16 = 0x0001;
const ALG_ECC: u16 = 0x0023;
const ALG_RSASSA: u16 = 0x0014;
const ALG_RSAPSS: u16 = 0x0016;
const ALG_ECDSA: u16 = 0x0018;
const ALG_ECDAA: u16 = 0x001A;
const ALG_SM2: u16 = 0x001B;
const ALG_ECSCHNORR: u16 = 0x001C;

const CC_CREATE_PRIMARY: u32 = 0x131;
const CC_CREATE: u32 = 0x153;
const CC_ECDH_ZGEN: u32 = 0x154;
const CC_LOAD: u32 = 0x157;
const CC_RSA_DECRYPT: u32 = 0x159;
const CC_SIGN: u32 = 0x15D;
const CC_ECDH_KEYGEN: u32 = 0x163;
const CC_LOAD_EXTERNAL: u32 = 0x167;
const CC_RSA_ENCRYPT: u32 = 0x174;
const CC_CREATE_LOADED: u32 = 0x191;

/// Offset of the parameter area of a command with `handles` handles.
fn command_parameters(command: &[u8], handles: usize) -> Option<usize> {
    let after_handles = HEADER_SIZE + 4 * handles;
    if tag(command)? == ST_SESSIONS {
        let auth_size = read_u32(command, after_handles)? as usize;
        after_handles.checked_add(4)?.checked_add(auth_size)
    } else {
        Some(after_handles)
    }
}

/// The object type in a TPM2B_PUBLIC (or TPM2B_TEMPLATE) at `at`.
fn public_kind(buf: &[u8], at: usize) -> Option<KeyKind> {
    match read_u16(buf, at + 2)? {
        ALG_RSA => Some(KeyKind::Rsa),
        ALG_ECC => Some(KeyKind::Ecc),
        _ => None,
    }
}

/// The key kind of a command, from the command itself or, for Sign, from the
/// signature in its response.
pub fn key_kind(command: &[u8], response: &[u8]) -> Option<KeyKind> {
    let cc = code(command)?;
    match cc {
        CC_RSA_DECRYPT | CC_RSA_ENCRYPT => Some(KeyKind::Rsa),
        CC_ECDH_ZGEN | CC_ECDH_KEYGEN => Some(KeyKind::Ecc),
        // A TPM2B (sensitive or private part) comes first, then the public area.
        CC_CREATE_PRIMARY | CC_CREATE | CC_CREATE_LOADED | CC_LOAD | CC_LOAD_EXTERNAL => {
            let handles = usize::from(cc != CC_LOAD_EXTERNAL);
            let first = command_parameters(command, handles)?;
            let skip = read_u16(command, first)? as usize;
            public_kind(command, first + 2 + skip)
        }
        CC_SIGN => {
            if code(response)? != RC_SUCCESS {
                return None;
            }
            let at = if tag(response)? == ST_SESSIONS {
                HEADER_SIZE + 4
            } else {
                HEADER_SIZE
            };
            match read_u16(response, at)? {
                ALG_RSASSA | ALG_RSAPSS => Some(KeyKind::Rsa),
                ALG_ECDSA | ALG_ECDAA | ALG_SM2 | ALG_ECSCHNORR => Some(KeyKind::Ecc),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_own_size() {
        let cmd = flush_context(0x8000_0001);
        assert_eq!(cmd.len(), 14);
        assert_eq!(tag(&cmd), Some(ST_NO_SESSIONS));
        assert_eq!(size(&cmd), Some(14));
        assert_eq!(code(&cmd), Some(CC_FLUSH_CONTEXT));
        assert_eq!(read_u32(&cmd, 10), Some(0x8000_0001));
        let load = context_load(&[1, 2, 3]);
        assert_eq!(size(&load), Some(13));
        assert_eq!(&load[10..], &[1, 2, 3]);
    }

    #[test]
    fn short_buffers_read_as_none() {
        assert_eq!(read_u32(&[0, 1, 2], 0), None);
        assert_eq!(read_u16(&[0], 0), None);
        assert_eq!(read_u32(&[0; 8], usize::MAX - 1), None);
        assert_eq!(code(&[0x80, 0x01, 0, 0, 0, 10]), None);
    }

    #[test]
    fn write_errors_round_trip_and_are_not_tpm_codes() {
        let resp = write_error_response(12);
        let rc = code(&resp).unwrap_or_default();
        assert_eq!(rc, 0x000B_F00C);
        assert_eq!(write_errno(rc), Some(12));
        assert_eq!(write_errno(0x902), None);
        let unsupported = code(&unsupported_command_response()).unwrap_or_default();
        assert_eq!(unsupported, 0x000B_0143);
        assert_eq!(write_errno(unsupported), None);
    }

    #[test]
    fn rc_value_drops_the_handle_number_of_format_one_codes() {
        // TPM_RC_HANDLE on handle 1, TPM_RC_INTEGRITY on parameter 1.
        assert_eq!(rc_value(0x18B), RC_HANDLE);
        assert_eq!(rc_value(0x1DF), 0x09F);
        assert_eq!(rc_value(RC_REFERENCE_H0), RC_REFERENCE_H0);
    }

    #[test]
    fn command_attributes_decode() {
        // TPM2_Sign on swtpm: one handle, no response handle.
        let sign = 0x0200_015D;
        assert_eq!(cc_attr_handles(sign), 1);
        assert!(!cc_attr_returns_handle(sign));
        assert_eq!(cc_attr_code(sign), 0x15D);
        // TPM2_Load: one handle, returns one.
        let load = 0x1200_0157;
        assert!(cc_attr_returns_handle(load));
        assert_eq!(cc_attr_code(0x2000_0001), 0x2000_0001);
    }

    #[test]
    fn capability_lists_parse() {
        let mut body = vec![1];
        body.extend_from_slice(&CAP_COMMANDS.to_be_bytes());
        body.extend_from_slice(&2u32.to_be_bytes());
        body.extend_from_slice(&0x0200_015Du32.to_be_bytes());
        body.extend_from_slice(&0x1200_0157u32.to_be_bytes());
        let resp = frame(ST_NO_SESSIONS, 0, &body);
        assert_eq!(
            capability_words(&resp, CAP_COMMANDS),
            Some((true, vec![0x0200_015D, 0x1200_0157]))
        );
        assert_eq!(capability_words(&resp, CAP_HANDLES), None);
        assert_eq!(capability_words(&resp[..20], CAP_COMMANDS), None);
    }

    fn sign_response(sig_alg: u16, with_sessions: bool) -> Vec<u8> {
        let mut body = Vec::new();
        if with_sessions {
            body.extend_from_slice(&6u32.to_be_bytes());
        }
        body.extend_from_slice(&sig_alg.to_be_bytes());
        body.extend_from_slice(&[0, 0x0B, 0, 0]);
        let tag = if with_sessions {
            ST_SESSIONS
        } else {
            ST_NO_SESSIONS
        };
        frame(tag, 0, &body)
    }

    #[test]
    fn the_key_kind_of_a_signature_comes_from_the_response() {
        let cmd = frame(ST_SESSIONS, CC_SIGN, &[0x80, 0, 0, 0]);
        assert_eq!(
            key_kind(&cmd, &sign_response(ALG_RSASSA, true)),
            Some(KeyKind::Rsa)
        );
        assert_eq!(
            key_kind(&cmd, &sign_response(ALG_ECDSA, false)),
            Some(KeyKind::Ecc)
        );
        assert_eq!(key_kind(&cmd, &error_response(0x902)), None);
    }

    #[test]
    fn the_key_kind_of_a_load_comes_from_the_public_area() {
        // Load: parent handle, a 9-byte password session, inPrivate (3 bytes), inPublic.
        let mut body = 0x8100_0001u32.to_be_bytes().to_vec();
        body.extend_from_slice(&9u32.to_be_bytes());
        body.extend_from_slice(&[0x40, 0, 0, 9, 0, 0, 1, 0, 0]);
        body.extend_from_slice(&[0, 3, 7, 7, 7]);
        body.extend_from_slice(&[0, 4, 0, 0x23, 0, 0x0B]);
        let cmd = frame(ST_SESSIONS, CC_LOAD, &body);
        assert_eq!(key_kind(&cmd, &[]), Some(KeyKind::Ecc));
        let truncated = frame(ST_SESSIONS, CC_LOAD, &body[..20]);
        assert_eq!(key_kind(&truncated, &[]), None);
        let rsa_decrypt = frame(ST_SESSIONS, CC_RSA_DECRYPT, &[]);
        assert_eq!(key_kind(&rsa_decrypt, &[]), Some(KeyKind::Rsa));
        assert_eq!(key_kind(&get_capability(1, 2, 3), &[]), None);
    }
}
