//! Key structures: TPM_KEY12 (and TPM 1.1's TPM_KEY, read and written back as it
//! came), TPM_KEY_PARMS, TPM_RSA_KEY_PARMS, TPM_PUBKEY, TPM_STORE_ASYMKEY.

use sha1::{Digest, Sha1};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::consts::{alg, payload, stag, STRUCT_VER_1_1};
use super::wire::{CodecError, Reader, Writer};

/// TPM_RSA_KEY_PARMS. An empty exponent means the default 65537.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaKeyParms {
    pub key_length: u32,
    pub num_primes: u32,
    pub exponent: Vec<u8>,
}

impl RsaKeyParms {
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.key_length)
            .u32(self.num_primes)
            .sized32(&self.exponent);
    }

    pub fn decode(data: &[u8]) -> Result<RsaKeyParms, CodecError> {
        let mut r = Reader::new(data);
        let parms = RsaKeyParms {
            key_length: r.u32("TPM_RSA_KEY_PARMS.keyLength")?,
            num_primes: r.u32("TPM_RSA_KEY_PARMS.numPrimes")?,
            exponent: r.sized32("TPM_RSA_KEY_PARMS.exponent")?.to_vec(),
        };
        r.finish("TPM_RSA_KEY_PARMS")?;
        Ok(parms)
    }

    /// The public exponent as a big-endian byte string.
    pub fn exponent_bytes(&self) -> Vec<u8> {
        if self.exponent.is_empty() {
            vec![0x01, 0x00, 0x01]
        } else {
            self.exponent.clone()
        }
    }
}

/// TPM_KEY_PARMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParms {
    pub algorithm: u32,
    pub enc_scheme: u16,
    pub sig_scheme: u16,
    /// Raw parms (TPM_RSA_KEY_PARMS for RSA).
    pub parms: Vec<u8>,
}

impl KeyParms {
    pub fn rsa(bits: u32, enc_scheme: u16, sig_scheme: u16) -> KeyParms {
        let mut w = Writer::new();
        RsaKeyParms {
            key_length: bits,
            num_primes: 2,
            exponent: Vec::new(),
        }
        .encode(&mut w);
        KeyParms {
            algorithm: alg::RSA,
            enc_scheme,
            sig_scheme,
            parms: w.into_vec(),
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.algorithm)
            .u16(self.enc_scheme)
            .u16(self.sig_scheme)
            .sized32(&self.parms);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<KeyParms, CodecError> {
        Ok(KeyParms {
            algorithm: r.u32("TPM_KEY_PARMS.algorithmID")?,
            enc_scheme: r.u16("TPM_KEY_PARMS.encScheme")?,
            sig_scheme: r.u16("TPM_KEY_PARMS.sigScheme")?,
            parms: r.sized32("TPM_KEY_PARMS.parms")?.to_vec(),
        })
    }

    /// The RSA parameters; an error for any other algorithm.
    pub fn rsa_parms(&self) -> Result<RsaKeyParms, CodecError> {
        if self.algorithm != alg::RSA {
            return Err(CodecError::Invalid {
                what: "TPM_KEY_PARMS",
                reason: "not an RSA key",
            });
        }
        RsaKeyParms::decode(&self.parms)
    }
}

/// TPM_PUBKEY: what GetPubKey, OwnerReadInternalPub and ReadPubek return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubKey {
    pub parms: KeyParms,
    /// The RSA modulus, big-endian.
    pub modulus: Vec<u8>,
}

impl PubKey {
    pub fn encode(&self, w: &mut Writer) {
        self.parms.encode(w);
        w.sized32(&self.modulus);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<PubKey, CodecError> {
        let parms = KeyParms::decode(r)?;
        let modulus = r.sized32("TPM_PUBKEY.pubKey")?.to_vec();
        Ok(PubKey { parms, modulus })
    }

    pub fn from_bytes(data: &[u8]) -> Result<PubKey, CodecError> {
        let mut r = Reader::new(data);
        let key = PubKey::decode(&mut r)?;
        r.finish("TPM_PUBKEY")?;
        Ok(key)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_vec()
    }
}

/// Which structure a key blob is: TPM 1.2's TPM_KEY12 or TPM 1.1's TPM_KEY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVersion {
    Key12,
    /// TPM_KEY with its TPM_STRUCT_VER, kept so the blob re-encodes identically.
    Key11([u8; 4]),
}

/// A wrapped key: TPM_KEY12 or TPM_KEY. `enc_data` is the TPM_STORE_ASYMKEY encrypted
/// to the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key12 {
    pub version: KeyVersion,
    pub key_usage: u16,
    pub key_flags: u32,
    pub auth_data_usage: u8,
    pub parms: KeyParms,
    pub pcr_info: Vec<u8>,
    /// The RSA modulus (TPM_STORE_PUBKEY), empty in a CreateWrapKey template.
    pub modulus: Vec<u8>,
    pub enc_data: Vec<u8>,
}

impl Key12 {
    /// A TPM_KEY12 template for CreateWrapKey or TakeOwnership (no modulus, no private part).
    pub fn template(key_usage: u16, key_flags: u32, auth_data_usage: u8, parms: KeyParms) -> Key12 {
        Key12 {
            version: KeyVersion::Key12,
            key_usage,
            key_flags,
            auth_data_usage,
            parms,
            pcr_info: Vec::new(),
            modulus: Vec::new(),
            enc_data: Vec::new(),
        }
    }

    /// Everything but encSize/encData: the part pubDataDigest covers.
    pub fn encode_public(&self, w: &mut Writer) {
        match self.version {
            KeyVersion::Key12 => {
                w.u16(stag::KEY12).u16(0);
            }
            KeyVersion::Key11(ver) => {
                w.bytes(&ver);
            }
        }
        w.u16(self.key_usage)
            .u32(self.key_flags)
            .u8(self.auth_data_usage);
        self.parms.encode(w);
        w.sized32(&self.pcr_info).sized32(&self.modulus);
    }

    pub fn encode(&self, w: &mut Writer) {
        self.encode_public(w);
        w.sized32(&self.enc_data);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_vec()
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Key12, CodecError> {
        let head = r.array::<4>("TPM_KEY12.tag")?;
        let version = if head[..2] == stag::KEY12.to_be_bytes() {
            if head[2..] != [0, 0] {
                return Err(CodecError::Invalid {
                    what: "TPM_KEY12",
                    reason: "the fill field must be zero",
                });
            }
            KeyVersion::Key12
        } else if head[..2] == STRUCT_VER_1_1[..2] {
            KeyVersion::Key11(head)
        } else {
            return Err(CodecError::Invalid {
                what: "TPM key blob",
                reason: "neither a TPM_KEY12 (tag 0x0028) nor a TPM 1.1 TPM_KEY (version 1.1)",
            });
        };
        Ok(Key12 {
            version,
            key_usage: r.u16("TPM_KEY12.keyUsage")?,
            key_flags: r.u32("TPM_KEY12.keyFlags")?,
            auth_data_usage: r.u8("TPM_KEY12.authDataUsage")?,
            parms: KeyParms::decode(r)?,
            pcr_info: r.sized32("TPM_KEY12.PCRInfo")?.to_vec(),
            modulus: r.sized32("TPM_KEY12.pubKey")?.to_vec(),
            enc_data: r.sized32("TPM_KEY12.encData")?.to_vec(),
        })
    }

    /// Parses a whole blob; trailing bytes are an error.
    pub fn from_bytes(data: &[u8]) -> Result<Key12, CodecError> {
        let mut r = Reader::new(data);
        let key = Key12::decode(&mut r)?;
        r.finish("TPM key blob")?;
        Ok(key)
    }

    /// SHA-1 of the public part: TPM_STORE_ASYMKEY.pubDataDigest.
    pub fn pub_data_digest(&self) -> [u8; 20] {
        let mut w = Writer::new();
        self.encode_public(&mut w);
        Sha1::digest(w.as_slice()).into()
    }

    /// The PCRs the key is bound to, if any (`None` for an empty PCRInfo).
    pub fn pcr_info(&self) -> Result<Option<super::pcr::PcrInfo>, CodecError> {
        if self.pcr_info.is_empty() {
            return Ok(None);
        }
        let long = self.version == KeyVersion::Key12;
        super::pcr::PcrInfo::decode(&self.pcr_info, long).map(Some)
    }

    pub fn pubkey(&self) -> PubKey {
        PubKey {
            parms: self.parms.clone(),
            modulus: self.modulus.clone(),
        }
    }
}

/// TPM_STORE_ASYMKEY: the private part of a key before it is encrypted to the parent.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct StoreAsymkey {
    pub usage_auth: [u8; 20],
    pub migration_auth: [u8; 20],
    pub pub_data_digest: [u8; 20],
    /// One prime factor of the modulus (the TPM recomputes the rest).
    pub prime: Vec<u8>,
}

impl std::fmt::Debug for StoreAsymkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreAsymkey { .. }")
    }
}

impl StoreAsymkey {
    /// Secret bytes: the caller encrypts them and then lets them drop (zeroized).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u8(payload::ASYM)
            .bytes(&self.usage_auth)
            .bytes(&self.migration_auth)
            .bytes(&self.pub_data_digest)
            .sized32(&self.prime);
        zeroize::Zeroizing::new(w.into_vec())
    }

    pub fn from_bytes(data: &[u8]) -> Result<StoreAsymkey, CodecError> {
        let mut r = Reader::new(data);
        if r.u8("TPM_STORE_ASYMKEY.payload")? != payload::ASYM {
            return Err(CodecError::Invalid {
                what: "TPM_STORE_ASYMKEY",
                reason: "payload is not TPM_PT_ASYM",
            });
        }
        let key = StoreAsymkey {
            usage_auth: r.array("TPM_STORE_ASYMKEY.usageAuth")?,
            migration_auth: r.array("TPM_STORE_ASYMKEY.migrationAuth")?,
            pub_data_digest: r.array("TPM_STORE_ASYMKEY.pubDataDigest")?,
            prime: r.sized32("TPM_STORE_ASYMKEY.privKey")?.to_vec(),
        };
        r.finish("TPM_STORE_ASYMKEY")?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::consts::{auth_usage, key_usage};

    /// A TPM_KEY12 built by hand from the structure tables in Part 2 (5.11, 5.4, 5.5, 10.1).
    fn sample() -> Vec<u8> {
        let mut v = vec![0x00, 0x28, 0x00, 0x00]; // tag, fill
        v.extend([0x00, 0x15]); // TPM_KEY_LEGACY
        v.extend([0, 0, 0, 2]); // migratable
        v.push(1); // TPM_AUTH_ALWAYS
        v.extend([0, 0, 0, 1, 0, 3, 0, 3]); // RSA, OAEP, DER
        v.extend([0, 0, 0, 12, 0, 0, 4, 0, 0, 0, 0, 2, 0, 0, 0, 0]); // 1024 bits, 2 primes
        v.extend([0, 0, 0, 0]); // no PCR info
        v.extend([0, 0, 0, 2, 0xAB, 0xCD]); // modulus
        v.extend([0, 0, 0, 1, 0xEE]); // encData
        v
    }

    #[test]
    fn key12_round_trip() {
        let bytes = sample();
        let key = Key12::from_bytes(&bytes).unwrap();
        assert_eq!(key.version, KeyVersion::Key12);
        assert_eq!(key.key_usage, key_usage::LEGACY);
        assert_eq!(key.auth_data_usage, auth_usage::ALWAYS);
        assert_eq!(key.parms.rsa_parms().unwrap().key_length, 1024);
        assert_eq!(key.parms.rsa_parms().unwrap().exponent_bytes(), [1, 0, 1]);
        assert_eq!(key.modulus, [0xAB, 0xCD]);
        assert_eq!(key.enc_data, [0xEE]);
        assert_eq!(key.to_bytes(), bytes);
        // pubDataDigest covers everything but encSize and encData.
        let expected: [u8; 20] = Sha1::digest(&bytes[..bytes.len() - 5]).into();
        assert_eq!(key.pub_data_digest(), expected);
    }

    #[test]
    fn tpm11_key_round_trip() {
        let mut bytes = sample();
        bytes[..4].copy_from_slice(&[1, 1, 0, 0]);
        let key = Key12::from_bytes(&bytes).unwrap();
        assert_eq!(key.version, KeyVersion::Key11([1, 1, 0, 0]));
        assert_eq!(key.to_bytes(), bytes);
    }

    #[test]
    fn bad_blobs_are_errors() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(Key12::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Key12::from_bytes(&extra).is_err());
        let mut bad_tag = bytes;
        bad_tag[1] = 0x29;
        assert!(Key12::from_bytes(&bad_tag).is_err());
    }

    #[test]
    fn store_asymkey_round_trip() {
        let key = StoreAsymkey {
            usage_auth: [1; 20],
            migration_auth: [2; 20],
            pub_data_digest: [3; 20],
            prime: vec![9, 8, 7],
        };
        let bytes = key.to_bytes();
        assert_eq!(bytes.len(), 1 + 60 + 4 + 3);
        assert_eq!(bytes[0], 1);
        assert_eq!(StoreAsymkey::from_bytes(&bytes).unwrap(), key);
    }
}
