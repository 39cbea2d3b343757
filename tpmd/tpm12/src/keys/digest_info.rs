//! DER DigestInfo for the TPM_SS_RSASSAPKCS1v15_DER scheme: the caller hashes, the TPM
//! pads and signs the DigestInfo as given.

/// Hashes a DER-scheme key can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The DER prefix of DigestInfo (RFC 8017, 9.2 note 1).
    pub fn prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// DigestInfo for `digest`, or `None` if its length does not fit the hash.
pub fn digest_info(hash: Hash, digest: &[u8]) -> Option<Vec<u8>> {
    (digest.len() == hash.digest_len()).then(|| [hash.prefix(), digest].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_declare_their_lengths() {
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            let info = digest_info(hash, &vec![0; hash.digest_len()]).unwrap();
            // SEQUENCE length covers the rest; the OCTET STRING length is the digest length.
            assert_eq!(info[1] as usize, info.len() - 2);
            assert_eq!(info[hash.prefix().len() - 1] as usize, hash.digest_len());
            assert!(digest_info(hash, &[0; 3]).is_none());
        }
    }
}
