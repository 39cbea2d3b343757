//! Big-endian marshalling: every TPM 1.2 integer is big-endian and every variable
//! field is preceded by its length.

/// A malformed or truncated TPM 1.2 structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("the TPM response is truncated: {what} needs {needed} more bytes, {left} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("{what} has {extra} unexpected trailing bytes")]
    Trailing { what: &'static str, extra: usize },
    #[error("{what} is malformed: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
    #[error("{what} declares {len} bytes, more than the {max} a TPM 1.2 ever sends")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// No TPM 1.2 structure comes near this; a larger length is corruption.
pub const MAX_FIELD: usize = 16 * 1024;

/// Appends big-endian values to a buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// A 32-bit length followed by the bytes (the usual TPM 1.2 sized field).
    pub fn sized32(&mut self, v: &[u8]) -> &mut Self {
        // Lengths come from our own structures, far below 4 GiB.
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.bytes(v)
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads big-endian values from a byte slice, never panicking on short input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.data[self.pos..];
        self.pos = self.data.len();
        rest
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.remaining() < n {
            return Err(CodecError::Truncated {
                what,
                needed: n,
                left: self.remaining(),
            });
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, CodecError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::Invalid {
                what,
                reason: "a boolean must be 0 or 1",
            }),
        }
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// A 32-bit length followed by that many bytes.
    pub fn sized32(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = self.u32(what)? as usize;
        if len > MAX_FIELD {
            return Err(CodecError::TooLong {
                what,
                len,
                max: MAX_FIELD,
            });
        }
        self.take(len, what)
    }

    /// A 16-bit length followed by that many bytes.
    pub fn sized16(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = self.u16(what)? as usize;
        self.take(len, what)
    }

    pub fn finish(&self, what: &'static str) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(CodecError::Trailing { what, extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::new();
        w.u8(1)
            .u16(0x0203)
            .u32(0x0405_0607)
            .sized32(b"ab")
            .bool(true);
        assert_eq!(
            w.as_slice(),
            &[1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 2, b'a', b'b', 1]
        );
        let mut r = Reader::new(w.as_slice());
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 0x0203);
        assert_eq!(r.u32("c").unwrap(), 0x0405_0607);
        assert_eq!(r.sized32("d").unwrap(), b"ab");
        assert!(r.bool("e").unwrap());
        r.finish("all").unwrap();
    }

    #[test]
    fn truncation_is_an_error() {
        let mut r = Reader::new(&[0, 0, 0, 9, 1]);
        assert!(matches!(
            r.sized32("blob"),
            Err(CodecError::Truncated {
                needed: 9,
                left: 1,
                ..
            })
        ));
        assert!(Reader::new(&[1]).u16("x").is_err());
        assert!(Reader::new(&[2]).bool("x").is_err());
    }
}
