//! A minimal DER reader and writer for the TPMKey structure.

use super::KeyFileError;

pub(super) const TAG_BOOLEAN: u8 = 0x01;
pub(super) const TAG_INTEGER: u8 = 0x02;
pub(super) const TAG_OCTET_STRING: u8 = 0x04;
pub(super) const TAG_OID: u8 = 0x06;
pub(super) const TAG_SEQUENCE: u8 = 0x30;
pub(super) const TAG_CONTEXT_0: u8 = 0xA0;
pub(super) const TAG_CONTEXT_1: u8 = 0xA1;
pub(super) const TAG_CONTEXT_2: u8 = 0xA2;
pub(super) const TAG_CONTEXT_3: u8 = 0xA3;
pub(super) const TAG_UTF8_STRING: u8 = 0x0C;
pub(super) const TAG_CONTEXT_4: u8 = 0xA4;
pub(super) const TAG_CONTEXT_5: u8 = 0xA5;
pub(super) const TAG_CONTEXT_6: u8 = 0xA6;

pub(super) struct Der<'a> {
    data: &'a [u8],
    pos: usize,
}

pub(super) fn corrupt(msg: impl Into<String>) -> KeyFileError {
    KeyFileError::Corrupt(msg.into())
}

impl<'a> Der<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Der { data, pos: 0 }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(super) fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn byte(&mut self, what: &str) -> Result<u8, KeyFileError> {
        let b = self
            .data
            .get(self.pos)
            .copied()
            .ok_or_else(|| corrupt(format!("the data ends inside {what}")))?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads one TLV with the expected tag and returns its contents.
    pub(super) fn read(&mut self, tag: u8, what: &str) -> Result<&'a [u8], KeyFileError> {
        let found = self.byte(what)?;
        if found != tag {
            return Err(corrupt(format!(
                "expected {what} (tag 0x{tag:02x}) but found tag 0x{found:02x}"
            )));
        }
        let first = self.byte(what)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(corrupt(format!("{what} has an invalid length encoding")));
            }
            let mut len = 0usize;
            for _ in 0..count {
                len = (len << 8) | usize::from(self.byte(what)?);
            }
            len
        };
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| {
                corrupt(format!(
                    "{what} claims {len} bytes but only {} remain",
                    self.data.len().saturating_sub(self.pos)
                ))
            })?;
        let contents = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| corrupt(format!("{what} is out of bounds")))?;
        self.pos = end;
        Ok(contents)
    }
}

pub(super) fn put_der(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(contents);
}

pub(super) fn der_unsigned(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut out = Vec::with_capacity(5);
    if bytes[skip] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[skip..]);
    out
}

pub(super) fn parse_unsigned(contents: &[u8]) -> Result<u32, KeyFileError> {
    match contents.first() {
        None => return Err(corrupt("parent handle INTEGER is empty")),
        Some(b) if b & 0x80 != 0 => return Err(corrupt("parent handle is negative")),
        _ => {}
    }
    let first = contents
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(contents.len());
    let significant = &contents[first..];
    if significant.len() > 4 {
        return Err(corrupt("parent handle does not fit in 32 bits"));
    }
    Ok(significant
        .iter()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}
