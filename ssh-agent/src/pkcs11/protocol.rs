//! Between the agent and its PKCS#11 helper, on the helper's stdin and stdout: frames as
//! in the agent protocol. The agent sends LOAD (provider path, PIN) once, then SIGN
//! (key blob, data, flags) as often as needed; the helper answers KEYS (key blobs with
//! labels), SIGNATURE (an SSH signature blob) or FAILURE with the reason.

use std::io::{Read, Write};

use ssh_agent_lib::ssh_encoding::{Decode, Encode, Reader};

pub const LOAD: u8 = 1;
pub const SIGN: u8 = 2;
pub const KEYS: u8 = 3;
pub const SIGNATURE: u8 = 4;
pub const FAILURE: u8 = 5;

/// Helper messages are small: keys, a signature, or a request to sign.
const MAX_MESSAGE: usize = 256 * 1024;

pub fn write_frame(out: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    let framed =
        crate::wire::frame(body).ok_or_else(|| std::io::Error::other("message too long"))?;
    out.write_all(&framed)?;
    out.flush()
}

/// One frame; None at a clean end of input.
pub fn read_frame(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    match input.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > MAX_MESSAGE {
        return Err(std::io::Error::other(format!("a message of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

/// A message: its kind and its strings (and, for SIGN, the flags at the end).
pub fn message(kind: u8, parts: &[&[u8]], flags: Option<u32>) -> Option<Vec<u8>> {
    let mut body = vec![kind];
    for part in parts {
        part.encode(&mut body).ok()?;
    }
    if let Some(flags) = flags {
        flags.encode(&mut body).ok()?;
    }
    Some(body)
}

pub fn failure(reason: &str) -> Vec<u8> {
    message(FAILURE, &[reason.as_bytes()], None).unwrap_or_else(|| vec![FAILURE])
}

/// Reads `count` strings from a message body (after its kind byte).
pub fn strings(mut reader: &[u8], count: usize) -> Result<(Vec<Vec<u8>>, &[u8]), String> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(
            Vec::<u8>::decode(&mut reader).map_err(|e| format!("malformed helper message: {e}"))?,
        );
    }
    Ok((out, reader))
}

pub fn read_u32(mut reader: &[u8]) -> Result<u32, String> {
    let value = u32::decode(&mut reader).map_err(|e| format!("malformed helper message: {e}"))?;
    if !reader.is_finished() {
        return Err("malformed helper message: trailing bytes".into());
    }
    Ok(value)
}
