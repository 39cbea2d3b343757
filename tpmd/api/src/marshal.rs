//! Minimal TPM 2.0 wire helpers: big-endian integers and TPM2B sized buffers.
//!
//! Only what the client side needs to read and write public areas, sensitive areas and
//! duplication blobs. Readers never panic: every read is bounds-checked and a short
//! buffer is a [`MarshalError::Truncated`].

use thiserror::Error;

/// TPM_ALG_RSA.
pub const TPM_ALG_RSA: u16 = 0x0001;
/// TPM_ALG_SHA1.
pub const TPM_ALG_SHA1: u16 = 0x0004;
/// TPM_ALG_HMAC.
pub const TPM_ALG_HMAC: u16 = 0x0005;
/// TPM_ALG_AES.
pub const TPM_ALG_AES: u16 = 0x0006;
/// TPM_ALG_KEYEDHASH.
pub const TPM_ALG_KEYEDHASH: u16 = 0x0008;
/// TPM_ALG_SHA256.
pub const TPM_ALG_SHA256: u16 = 0x000B;
/// TPM_ALG_SHA384.
pub const TPM_ALG_SHA384: u16 = 0x000C;
/// TPM_ALG_SHA512.
pub const TPM_ALG_SHA512: u16 = 0x000D;
/// TPM_ALG_NULL.
pub const TPM_ALG_NULL: u16 = 0x0010;
/// TPM_ALG_RSASSA (PKCS#1 v1.5 signatures).
pub const TPM_ALG_RSASSA: u16 = 0x0014;
/// TPM_ALG_RSAES (PKCS#1 v1.5 encryption).
pub const TPM_ALG_RSAES: u16 = 0x0015;
/// TPM_ALG_RSAPSS.
pub const TPM_ALG_RSAPSS: u16 = 0x0016;
/// TPM_ALG_OAEP.
pub const TPM_ALG_OAEP: u16 = 0x0017;
/// TPM_ALG_ECDSA.
pub const TPM_ALG_ECDSA: u16 = 0x0018;
/// TPM_ALG_ECDH.
pub const TPM_ALG_ECDH: u16 = 0x0019;
/// TPM_ALG_ECDAA (its scheme carries a count besides the hash).
pub const TPM_ALG_ECDAA: u16 = 0x001A;
/// TPM_ALG_ECC.
pub const TPM_ALG_ECC: u16 = 0x0023;
/// TPM_ALG_SYMCIPHER.
pub const TPM_ALG_SYMCIPHER: u16 = 0x0025;
/// TPM_ALG_CFB.
pub const TPM_ALG_CFB: u16 = 0x0043;

/// TPM_ECC_NIST_P256.
pub const TPM_ECC_NIST_P256: u16 = 0x0003;
/// TPM_ECC_NIST_P384.
pub const TPM_ECC_NIST_P384: u16 = 0x0004;

/// TPMA_OBJECT fixedTPM.
pub const TPMA_OBJECT_FIXED_TPM: u32 = 1 << 1;
/// TPMA_OBJECT stClear.
pub const TPMA_OBJECT_ST_CLEAR: u32 = 1 << 2;
/// TPMA_OBJECT fixedParent.
pub const TPMA_OBJECT_FIXED_PARENT: u32 = 1 << 4;
/// TPMA_OBJECT sensitiveDataOrigin.
pub const TPMA_OBJECT_SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
/// TPMA_OBJECT userWithAuth.
pub const TPMA_OBJECT_USER_WITH_AUTH: u32 = 1 << 6;
/// TPMA_OBJECT adminWithPolicy.
pub const TPMA_OBJECT_ADMIN_WITH_POLICY: u32 = 1 << 7;
/// TPMA_OBJECT noDA.
pub const TPMA_OBJECT_NO_DA: u32 = 1 << 10;
/// TPMA_OBJECT encryptedDuplication.
pub const TPMA_OBJECT_ENCRYPTED_DUPLICATION: u32 = 1 << 11;
/// TPMA_OBJECT restricted.
pub const TPMA_OBJECT_RESTRICTED: u32 = 1 << 16;
/// TPMA_OBJECT decrypt.
pub const TPMA_OBJECT_DECRYPT: u32 = 1 << 17;
/// TPMA_OBJECT sign (also called encrypt).
pub const TPMA_OBJECT_SIGN: u32 = 1 << 18;

/// Errors reading TPM wire structures.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MarshalError {
    /// The buffer ended before the structure did.
    #[error(
        "TPM data is truncated: {what} needs {needed} more byte(s) but only {available} remain; the data is incomplete or corrupt"
    )]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// Bytes were left over after a complete structure.
    #[error(
        "TPM data has {count} unexpected trailing byte(s) after {what}; the data is corrupt or not the expected structure"
    )]
    TrailingBytes {
        /// The structure that ended early.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
}

/// A bounds-checked big-endian reader over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Position of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads `n` raw bytes.
    pub fn read_bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MarshalError> {
        let available = self.remaining();
        if n > available {
            return Err(MarshalError::Truncated {
                what,
                needed: n,
                available,
            });
        }
        let start = self.pos;
        self.pos += n;
        self.buf
            .get(start..start + n)
            .ok_or(MarshalError::Truncated {
                what,
                needed: n,
                available,
            })
    }

    /// Reads a fixed-size array.
    fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], MarshalError> {
        let bytes = self.read_bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads one byte.
    pub fn read_u8(&mut self, what: &'static str) -> Result<u8, MarshalError> {
        Ok(self.read_array::<1>(what)?[0])
    }

    /// Reads a big-endian u16.
    pub fn read_u16(&mut self, what: &'static str) -> Result<u16, MarshalError> {
        Ok(u16::from_be_bytes(self.read_array(what)?))
    }

    /// Reads a big-endian u32.
    pub fn read_u32(&mut self, what: &'static str) -> Result<u32, MarshalError> {
        Ok(u32::from_be_bytes(self.read_array(what)?))
    }

    /// Reads a TPM2B: a big-endian u16 size followed by that many bytes.
    pub fn read_tpm2b(&mut self, what: &'static str) -> Result<&'a [u8], MarshalError> {
        let size = self.read_u16(what)?;
        self.read_bytes(usize::from(size), what)
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self, what: &'static str) -> Result<(), MarshalError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(MarshalError::TrailingBytes { what, count }),
        }
    }
}

/// Appends a big-endian u16.
pub fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a big-endian u32.
pub fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a TPM2B: u16 size then the bytes.
///
/// A TPM2B cannot hold more than 65535 bytes and no TPM structure this crate builds comes
/// near that; longer input is cut to 65535 bytes so that the output stays well-formed
/// (the TPM then rejects it as it would any corrupt field).
pub fn put_tpm2b(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len().min(usize::from(u16::MAX));
    put_u16(out, len as u16);
    out.extend_from_slice(&data[..len]);
}

/// Returns `data` as a TPM2B (u16 size prefix).
pub fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    put_tpm2b(&mut out, data);
    out
}

/// Reads a buffer that must be exactly one TPM2B and returns its contents.
pub fn parse_tpm2b<'a>(data: &'a [u8], what: &'static str) -> Result<&'a [u8], MarshalError> {
    let mut reader = Reader::new(data);
    let inner = reader.read_tpm2b(what)?;
    reader.finish(what)?;
    Ok(inner)
}

/// Digest size in bytes of a TPM hash algorithm, or `None` if not one we know.
pub fn digest_size(hash_alg: u16) -> Option<usize> {
    match hash_alg {
        TPM_ALG_SHA1 => Some(20),
        TPM_ALG_SHA256 => Some(32),
        TPM_ALG_SHA384 => Some(48),
        TPM_ALG_SHA512 => Some(64),
        _ => None,
    }
}

/// Human-readable name of a TPM algorithm identifier for error messages.
pub fn alg_name(alg: u16) -> String {
    let name = match alg {
        TPM_ALG_RSA => "RSA",
        TPM_ALG_SHA1 => "SHA1",
        TPM_ALG_HMAC => "HMAC",
        TPM_ALG_AES => "AES",
        TPM_ALG_KEYEDHASH => "KEYEDHASH",
        TPM_ALG_SHA256 => "SHA256",
        TPM_ALG_SHA384 => "SHA384",
        TPM_ALG_SHA512 => "SHA512",
        TPM_ALG_NULL => "NULL",
        TPM_ALG_RSASSA => "RSASSA",
        TPM_ALG_RSAES => "RSAES",
        TPM_ALG_RSAPSS => "RSAPSS",
        TPM_ALG_OAEP => "OAEP",
        TPM_ALG_ECDSA => "ECDSA",
        TPM_ALG_ECDH => "ECDH",
        TPM_ALG_ECDAA => "ECDAA",
        TPM_ALG_ECC => "ECC",
        TPM_ALG_SYMCIPHER => "SYMCIPHER",
        TPM_ALG_CFB => "CFB",
        _ => return format!("algorithm 0x{alg:04x}"),
    };
    name.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_integers_and_tpm2b() {
        let data = [
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x00, 0x02, 0xaa, 0xbb,
        ];
        let mut r = Reader::new(&data);
        assert_eq!(r.read_u8("a").unwrap(), 0x01);
        assert_eq!(r.read_u16("b").unwrap(), 0x0203);
        assert_eq!(r.read_u32("c").unwrap(), 0x0405_0607);
        assert_eq!(r.read_tpm2b("d").unwrap(), &[0xaa, 0xbb]);
        assert!(r.is_empty());
        r.finish("all").unwrap();
    }

    #[test]
    fn truncation_is_an_error() {
        let data = [0x00, 0x05, 0x01];
        let mut r = Reader::new(&data);
        let err = r.read_tpm2b("buffer").unwrap_err();
        assert_eq!(
            err,
            MarshalError::Truncated {
                what: "buffer",
                needed: 5,
                available: 1
            }
        );
        assert!(Reader::new(&[0x01]).read_u16("x").is_err());
        assert!(Reader::new(&[0x01, 2, 3]).read_u32("x").is_err());
        assert!(Reader::new(&[]).read_u8("x").is_err());
    }

    #[test]
    fn trailing_bytes_are_reported() {
        assert_eq!(
            parse_tpm2b(&[0, 1, 9, 9], "blob").unwrap_err(),
            MarshalError::TrailingBytes {
                what: "blob",
                count: 1
            }
        );
        assert_eq!(parse_tpm2b(&[0, 1, 9], "blob").unwrap(), &[9]);
    }

    #[test]
    fn writers() {
        let mut out = Vec::new();
        put_u16(&mut out, 0x0102);
        put_u32(&mut out, 0x0304_0506);
        put_tpm2b(&mut out, b"xy");
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 0, 2, b'x', b'y']);
        assert_eq!(tpm2b(&[]), [0, 0]);
    }
}
