//! TPM 2.0 public areas (TPMT_PUBLIC / TPM2B_PUBLIC) of RSA and ECC keys.
//!
//! Parses and writes the structure byte-exactly, computes object names, converts the
//! public key to SubjectPublicKeyInfo and OpenSSH form, and builds the public areas
//! this project needs: a software key imported into the TPM and the TCG standard
//! storage root key.

use rsa::traits::PublicKeyParts;
use rsa::BigUint;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use thiserror::Error;

use crate::marshal::*;
use crate::privkey::SoftwareKey;

/// Errors about TPM public areas.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PublicError {
    /// The wire structure is truncated or has trailing bytes.
    #[error(transparent)]
    Marshal(#[from] MarshalError),
    /// Not an RSA or ECC object.
    #[error(
        "TPM public area is of type {0}, not an RSA or ECC key; only RSA and ECC keys can be used"
    )]
    UnsupportedType(String),
    /// An ECC curve other than NIST P-256 or P-384.
    #[error(
        "TPM public area uses ECC curve 0x{0:04x}; only NIST P-256 and P-384 keys can be used"
    )]
    UnsupportedCurve(u16),
    /// A scheme whose parameters this client does not parse.
    #[error(
        "TPM public area uses scheme {0}, which is not supported; use a key without that scheme"
    )]
    UnsupportedScheme(String),
    /// A name algorithm other than SHA1/SHA256/SHA384/SHA512.
    #[error(
        "TPM public area uses name algorithm {0}; only SHA1, SHA256, SHA384 and SHA512 are supported"
    )]
    UnsupportedNameAlg(String),
    /// The key material in the public area is not a valid public key.
    #[error(
        "TPM public area holds an invalid {what} public key ({detail}); the key data is corrupt"
    )]
    InvalidKey {
        /// Key kind.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A SubjectPublicKeyInfo that cannot describe a storage parent.
    #[error("{0}")]
    UnsupportedParentKey(String),
    /// Encoding the public key failed.
    #[error("cannot encode the public key: {0}")]
    Encoding(String),
}

/// The ECC curves a key can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EccCurve {
    /// NIST P-256 (TPM_ECC_NIST_P256).
    NistP256,
    /// NIST P-384 (TPM_ECC_NIST_P384).
    NistP384,
}

impl EccCurve {
    /// The TPM_ECC_CURVE identifier.
    pub fn tpm_id(self) -> u16 {
        match self {
            EccCurve::NistP256 => TPM_ECC_NIST_P256,
            EccCurve::NistP384 => TPM_ECC_NIST_P384,
        }
    }

    /// The curve for a TPM_ECC_CURVE identifier.
    pub fn from_tpm_id(id: u16) -> Result<Self, PublicError> {
        match id {
            TPM_ECC_NIST_P256 => Ok(EccCurve::NistP256),
            TPM_ECC_NIST_P384 => Ok(EccCurve::NistP384),
            other => Err(PublicError::UnsupportedCurve(other)),
        }
    }

    /// Size in bytes of a coordinate or scalar.
    pub fn field_size(self) -> usize {
        match self {
            EccCurve::NistP256 => 32,
            EccCurve::NistP384 => 48,
        }
    }
}

/// The type-specific parameters and unique field of a public area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParams {
    /// An RSA key.
    Rsa {
        /// Modulus size in bits (keyBits).
        bits: u16,
        /// Public exponent; 0 means 65537, as on the wire.
        exponent: u32,
        /// Modulus, big-endian (the unique field).
        modulus: Vec<u8>,
    },
    /// An ECC key.
    Ecc {
        /// The curve.
        curve: EccCurve,
        /// Public point x, big-endian.
        x: Vec<u8>,
        /// Public point y, big-endian.
        y: Vec<u8>,
    },
}

/// TPMT_SYM_DEF_OBJECT when not TPM_ALG_NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymmetricDef {
    /// Symmetric algorithm (TPM_ALG_AES...).
    pub algorithm: u16,
    /// Key size in bits.
    pub key_bits: u16,
    /// Block cipher mode (TPM_ALG_CFB...).
    pub mode: u16,
}

impl SymmetricDef {
    /// AES-128 in CFB mode, what every standard storage key uses.
    pub const AES_128_CFB: SymmetricDef = SymmetricDef {
        algorithm: TPM_ALG_AES,
        key_bits: 128,
        mode: TPM_ALG_CFB,
    };
}

/// A TPMT_PUBLIC of an RSA or ECC object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmPublic {
    /// Hash algorithm of the object's name.
    pub name_alg: u16,
    /// TPMA_OBJECT bits.
    pub attributes: u32,
    /// authPolicy digest (empty for none).
    pub auth_policy: Vec<u8>,
    /// Symmetric algorithm of a storage key; `None` is TPM_ALG_NULL.
    pub symmetric: Option<SymmetricDef>,
    /// Signing or encryption scheme, TPM_ALG_NULL for none.
    pub scheme: u16,
    /// Hash of the scheme; only on the wire when the scheme has one (TPM_ALG_NULL otherwise).
    pub scheme_hash: u16,
    /// ECC only: key derivation scheme, TPM_ALG_NULL usually. Ignored for RSA.
    pub kdf: u16,
    /// ECC only: hash of the KDF scheme when `kdf` is not TPM_ALG_NULL.
    pub kdf_hash: u16,
    /// Key parameters and the public key.
    pub key: KeyParams,
}

/// Schemes whose details are a single hash algorithm on the wire.
fn scheme_has_hash(scheme: u16) -> bool {
    scheme != TPM_ALG_NULL && scheme != TPM_ALG_RSAES
}

/// Hashes the concatenation of `parts` with a TPM hash algorithm.
pub fn hash_parts(hash_alg: u16, parts: &[&[u8]]) -> Result<Vec<u8>, PublicError> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut hasher = D::new();
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize().to_vec()
    }
    match hash_alg {
        TPM_ALG_SHA1 => Ok(run::<Sha1>(parts)),
        TPM_ALG_SHA256 => Ok(run::<Sha256>(parts)),
        TPM_ALG_SHA384 => Ok(run::<Sha384>(parts)),
        TPM_ALG_SHA512 => Ok(run::<Sha512>(parts)),
        other => Err(PublicError::UnsupportedNameAlg(alg_name(other))),
    }
}

/// Left-pads a big-endian number to `size` bytes; `None` if it is longer (after
/// dropping leading zeros).
fn pad_to(bytes: &[u8], size: usize) -> Option<Vec<u8>> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let trimmed = &bytes[first..];
    if trimmed.len() > size {
        return None;
    }
    let mut out = vec![0u8; size - trimmed.len()];
    out.extend_from_slice(trimmed);
    Some(out)
}

/// A big integer as u32, if it fits.
pub(crate) fn biguint_to_u32(value: &BigUint) -> Option<u32> {
    let bytes = value.to_bytes_be();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = &bytes[first..];
    if significant.len() > 4 {
        return None;
    }
    Some(
        significant
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)),
    )
}

/// A parsed public key, for conversions.
enum AnyPublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::PublicKey),
    P384(p384::PublicKey),
}

impl TpmPublic {
    /// Parses a TPMT_PUBLIC (no size prefix). Trailing bytes are an error.
    pub fn unmarshal(tpmt_public: &[u8]) -> Result<TpmPublic, PublicError> {
        let mut r = Reader::new(tpmt_public);
        let key_type = r.read_u16("TPMT_PUBLIC type")?;
        if key_type != TPM_ALG_RSA && key_type != TPM_ALG_ECC {
            return Err(PublicError::UnsupportedType(match key_type {
                TPM_ALG_KEYEDHASH => "KEYEDHASH (sealed data or HMAC key)".to_string(),
                TPM_ALG_SYMCIPHER => "SYMCIPHER (symmetric key)".to_string(),
                other => alg_name(other),
            }));
        }
        let name_alg = r.read_u16("TPMT_PUBLIC nameAlg")?;
        let attributes = r.read_u32("TPMT_PUBLIC objectAttributes")?;
        let auth_policy = r.read_tpm2b("TPMT_PUBLIC authPolicy")?.to_vec();
        let sym_alg = r.read_u16("TPMT_SYM_DEF_OBJECT algorithm")?;
        let symmetric = if sym_alg == TPM_ALG_NULL {
            None
        } else {
            Some(SymmetricDef {
                algorithm: sym_alg,
                key_bits: r.read_u16("TPMT_SYM_DEF_OBJECT keyBits")?,
                mode: r.read_u16("TPMT_SYM_DEF_OBJECT mode")?,
            })
        };
        let scheme = r.read_u16("scheme")?;
        if scheme == TPM_ALG_ECDAA {
            return Err(PublicError::UnsupportedScheme(alg_name(scheme)));
        }
        let scheme_hash = if scheme_has_hash(scheme) {
            r.read_u16("scheme hashAlg")?
        } else {
            TPM_ALG_NULL
        };
        let (mut kdf, mut kdf_hash) = (TPM_ALG_NULL, TPM_ALG_NULL);
        let key = if key_type == TPM_ALG_RSA {
            let bits = r.read_u16("TPMS_RSA_PARMS keyBits")?;
            let exponent = r.read_u32("TPMS_RSA_PARMS exponent")?;
            let modulus = r.read_tpm2b("RSA modulus")?.to_vec();
            KeyParams::Rsa {
                bits,
                exponent,
                modulus,
            }
        } else {
            let curve = EccCurve::from_tpm_id(r.read_u16("TPMS_ECC_PARMS curveID")?)?;
            kdf = r.read_u16("TPMS_ECC_PARMS kdf")?;
            if kdf != TPM_ALG_NULL {
                kdf_hash = r.read_u16("TPMS_ECC_PARMS kdf hashAlg")?;
            }
            let x = r.read_tpm2b("ECC point x")?.to_vec();
            let y = r.read_tpm2b("ECC point y")?.to_vec();
            KeyParams::Ecc { curve, x, y }
        };
        r.finish("TPMT_PUBLIC")?;
        Ok(TpmPublic {
            name_alg,
            attributes,
            auth_policy,
            symmetric,
            scheme,
            scheme_hash,
            kdf,
            kdf_hash,
            key,
        })
    }

    fn key_type(&self) -> u16 {
        match self.key {
            KeyParams::Rsa { .. } => TPM_ALG_RSA,
            KeyParams::Ecc { .. } => TPM_ALG_ECC,
        }
    }

    /// Writes the TPMU_PUBLIC_PARMS: symmetric algorithm, scheme, and the key size or
    /// curve (with its KDF).
    fn put_parameters(&self, out: &mut Vec<u8>) {
        match self.symmetric {
            Some(sym) if sym.algorithm != TPM_ALG_NULL => {
                put_u16(out, sym.algorithm);
                put_u16(out, sym.key_bits);
                put_u16(out, sym.mode);
            }
            _ => put_u16(out, TPM_ALG_NULL),
        }
        put_u16(out, self.scheme);
        if scheme_has_hash(self.scheme) {
            put_u16(out, self.scheme_hash);
        }
        match &self.key {
            KeyParams::Rsa { bits, exponent, .. } => {
                put_u16(out, *bits);
                put_u32(out, *exponent);
            }
            KeyParams::Ecc { curve, .. } => {
                put_u16(out, curve.tpm_id());
                put_u16(out, self.kdf);
                if self.kdf != TPM_ALG_NULL {
                    put_u16(out, self.kdf_hash);
                }
            }
        }
    }

    /// Writes the TPMT_PUBLIC (no size prefix).
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(400);
        put_u16(&mut out, self.key_type());
        put_u16(&mut out, self.name_alg);
        put_u32(&mut out, self.attributes);
        put_tpm2b(&mut out, &self.auth_policy);
        self.put_parameters(&mut out);
        match &self.key {
            KeyParams::Rsa { modulus, .. } => put_tpm2b(&mut out, modulus),
            KeyParams::Ecc { x, y, .. } => {
                put_tpm2b(&mut out, x);
                put_tpm2b(&mut out, y);
            }
        }
        out
    }

    /// Writes the TPMT_PUBLIC_PARMS (type and parameters, as TPM2_TestParms takes them).
    pub fn marshal_parms(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        put_u16(&mut out, self.key_type());
        self.put_parameters(&mut out);
        out
    }

    /// Parses a TPM2B_PUBLIC (u16 size + TPMT_PUBLIC), as `tpm2_readpublic -o` writes it.
    pub fn from_tpm2b(tpm2b_public: &[u8]) -> Result<TpmPublic, PublicError> {
        let inner = parse_tpm2b(tpm2b_public, "TPM2B_PUBLIC")?;
        Self::unmarshal(inner)
    }

    /// Writes the TPM2B_PUBLIC (u16 size + TPMT_PUBLIC).
    pub fn to_tpm2b(&self) -> Vec<u8> {
        tpm2b(&self.marshal())
    }

    /// The object's name: nameAlg (big-endian u16) followed by H_nameAlg(TPMT_PUBLIC).
    pub fn name(&self) -> Result<Vec<u8>, PublicError> {
        let digest = hash_parts(self.name_alg, &[&self.marshal()])?;
        let mut name = Vec::with_capacity(digest.len() + 2);
        put_u16(&mut name, self.name_alg);
        name.extend_from_slice(&digest);
        Ok(name)
    }

    /// True if every bit of `mask` is set in the attributes.
    pub fn has_attributes(&self, mask: u32) -> bool {
        self.attributes & mask == mask
    }

    /// "rsa2048", "rsa3072", "rsa4096", "ecc-p256" or "ecc-p384".
    pub fn key_type_name(&self) -> String {
        match &self.key {
            KeyParams::Rsa { bits, .. } => format!("rsa{bits}"),
            KeyParams::Ecc {
                curve: EccCurve::NistP256,
                ..
            } => "ecc-p256".to_string(),
            KeyParams::Ecc {
                curve: EccCurve::NistP384,
                ..
            } => "ecc-p384".to_string(),
        }
    }

    fn public_key(&self) -> Result<AnyPublicKey, PublicError> {
        match &self.key {
            KeyParams::Rsa {
                exponent, modulus, ..
            } => {
                let e = if *exponent == 0 { 65537 } else { *exponent };
                rsa::RsaPublicKey::new(BigUint::from_bytes_be(modulus), BigUint::from(e))
                    .map(AnyPublicKey::Rsa)
                    .map_err(|e| PublicError::InvalidKey {
                        what: "RSA",
                        detail: e.to_string(),
                    })
            }
            KeyParams::Ecc { curve, x, y } => {
                let size = curve.field_size();
                let invalid = |detail: &str| PublicError::InvalidKey {
                    what: "ECC",
                    detail: detail.to_string(),
                };
                let x = pad_to(x, size).ok_or_else(|| invalid("x coordinate too long"))?;
                let y = pad_to(y, size).ok_or_else(|| invalid("y coordinate too long"))?;
                let mut sec1 = Vec::with_capacity(1 + 2 * size);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                match curve {
                    EccCurve::NistP256 => p256::PublicKey::from_sec1_bytes(&sec1)
                        .map(AnyPublicKey::P256)
                        .map_err(|_| invalid("point is not on curve P-256")),
                    EccCurve::NistP384 => p384::PublicKey::from_sec1_bytes(&sec1)
                        .map(AnyPublicKey::P384)
                        .map_err(|_| invalid("point is not on curve P-384")),
                }
            }
        }
    }

    /// DER SubjectPublicKeyInfo of the key.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, PublicError> {
        use rsa::pkcs8::EncodePublicKey;
        let doc = match self.public_key()? {
            AnyPublicKey::Rsa(k) => k.to_public_key_der(),
            AnyPublicKey::P256(k) => k.to_public_key_der(),
            AnyPublicKey::P384(k) => k.to_public_key_der(),
        };
        doc.map(|d| d.as_bytes().to_vec())
            .map_err(|e| PublicError::Encoding(e.to_string()))
    }

    /// PEM SubjectPublicKeyInfo ("PUBLIC KEY", LF line endings).
    pub fn to_spki_pem(&self) -> Result<String, PublicError> {
        let der = self.to_spki_der()?;
        der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &der)
            .map_err(|e| PublicError::Encoding(e.to_string()))
    }

    /// The key as an OpenSSH public key with the given comment.
    pub fn to_ssh_public_key(&self, comment: &str) -> Result<ssh_key::PublicKey, PublicError> {
        let data = match self.public_key()? {
            AnyPublicKey::Rsa(k) => ssh_key::public::KeyData::Rsa(
                ssh_key::public::RsaPublicKey::try_from(&k)
                    .map_err(|e| PublicError::Encoding(e.to_string()))?,
            ),
            AnyPublicKey::P256(k) => ssh_key::public::KeyData::Ecdsa(
                ssh_key::public::EcdsaPublicKey::from(&p256::ecdsa::VerifyingKey::from(&k)),
            ),
            AnyPublicKey::P384(k) => ssh_key::public::KeyData::Ecdsa(
                ssh_key::public::EcdsaPublicKey::from(&p384::ecdsa::VerifyingKey::from(&k)),
            ),
        };
        Ok(ssh_key::PublicKey::new(data, comment))
    }

    /// The public area for a software key imported into the TPM.
    ///
    /// nameAlg SHA256, no policy, no symmetric algorithm or scheme, and attributes
    /// userWithAuth|sign, plus decrypt for RSA. An imported key must not claim
    /// fixedTPM, fixedParent or sensitiveDataOrigin.
    ///
    /// A key without an auth value gets noDA: there is nothing to guess, and without it
    /// the key would stop working whenever anyone's wrong auth values put the TPM in
    /// dictionary-attack lockout. A key with an auth value keeps DA protection, which is
    /// what makes guessing it slow.
    pub fn for_software_key(key: &SoftwareKey, has_auth_value: bool) -> TpmPublic {
        let (attributes, params) = match key {
            SoftwareKey::Rsa(k) => {
                let modulus = k.n().to_bytes_be();
                let e = k.e();
                let exponent = if *e == BigUint::from(65537u32) {
                    0
                } else {
                    // Readers reject exponents that do not fit; see SoftwareKey::check_for_tpm.
                    biguint_to_u32(e).unwrap_or(u32::MAX)
                };
                let bits = u16::try_from(k.size() * 8).unwrap_or(u16::MAX);
                (
                    TPMA_OBJECT_USER_WITH_AUTH | TPMA_OBJECT_SIGN | TPMA_OBJECT_DECRYPT,
                    KeyParams::Rsa {
                        bits,
                        exponent,
                        modulus,
                    },
                )
            }
            SoftwareKey::EcP256(k) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                let point = k.public_key().to_encoded_point(false);
                (
                    TPMA_OBJECT_USER_WITH_AUTH | TPMA_OBJECT_SIGN,
                    KeyParams::Ecc {
                        curve: EccCurve::NistP256,
                        x: point.x().map(|c| c.to_vec()).unwrap_or_default(),
                        y: point.y().map(|c| c.to_vec()).unwrap_or_default(),
                    },
                )
            }
            SoftwareKey::EcP384(k) => {
                use p384::elliptic_curve::sec1::ToEncodedPoint;
                let point = k.public_key().to_encoded_point(false);
                (
                    TPMA_OBJECT_USER_WITH_AUTH | TPMA_OBJECT_SIGN,
                    KeyParams::Ecc {
                        curve: EccCurve::NistP384,
                        x: point.x().map(|c| c.to_vec()).unwrap_or_default(),
                        y: point.y().map(|c| c.to_vec()).unwrap_or_default(),
                    },
                )
            }
        };
        let da = if has_auth_value { 0 } else { TPMA_OBJECT_NO_DA };
        TpmPublic::plain(attributes | da, params)
    }

    /// A public area with SHA-256 names and no policy, symmetric algorithm or scheme:
    /// the shape of a software key's, and the one a TPM 1.2 key is presented in.
    pub fn plain(attributes: u32, key: KeyParams) -> TpmPublic {
        TpmPublic {
            name_alg: TPM_ALG_SHA256,
            attributes,
            auth_policy: Vec::new(),
            symmetric: None,
            scheme: TPM_ALG_NULL,
            scheme_hash: TPM_ALG_NULL,
            kdf: TPM_ALG_NULL,
            kdf_hash: TPM_ALG_NULL,
            key,
        }
    }

    /// Attributes of the TCG storage primary key templates.
    pub const STORAGE_KEY_ATTRIBUTES: u32 = TPMA_OBJECT_FIXED_TPM
        | TPMA_OBJECT_FIXED_PARENT
        | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN
        | TPMA_OBJECT_USER_WITH_AUTH
        | TPMA_OBJECT_NO_DA
        | TPMA_OBJECT_RESTRICTED
        | TPMA_OBJECT_DECRYPT;

    /// The TCG "Storage Primary Key RSA-2048" template with the given modulus as its
    /// unique field: what `tpm2_createprimary -C o -g sha256 -G rsa2048:aes128cfb`
    /// creates. Lets a key be wrapped for another machine knowing only its SRK's
    /// public key.
    pub fn standard_srk_with_modulus(modulus: &[u8]) -> TpmPublic {
        TpmPublic {
            name_alg: TPM_ALG_SHA256,
            attributes: Self::STORAGE_KEY_ATTRIBUTES,
            auth_policy: Vec::new(),
            symmetric: Some(SymmetricDef::AES_128_CFB),
            scheme: TPM_ALG_NULL,
            scheme_hash: TPM_ALG_NULL,
            kdf: TPM_ALG_NULL,
            kdf_hash: TPM_ALG_NULL,
            key: KeyParams::Rsa {
                bits: 2048,
                exponent: 0,
                modulus: modulus.to_vec(),
            },
        }
    }

    /// The TCG "Storage Primary Key ECC NIST P-256" template with the given point as its
    /// unique field (`tpm2_createprimary -C o -g sha256 -G ecc256:aes128cfb`).
    pub fn standard_ecc_srk_with_point(x: &[u8], y: &[u8]) -> TpmPublic {
        TpmPublic {
            name_alg: TPM_ALG_SHA256,
            attributes: Self::STORAGE_KEY_ATTRIBUTES,
            auth_policy: Vec::new(),
            symmetric: Some(SymmetricDef::AES_128_CFB),
            scheme: TPM_ALG_NULL,
            scheme_hash: TPM_ALG_NULL,
            kdf: TPM_ALG_NULL,
            kdf_hash: TPM_ALG_NULL,
            key: KeyParams::Ecc {
                curve: EccCurve::NistP256,
                x: x.to_vec(),
                y: y.to_vec(),
            },
        }
    }

    /// The standard storage key (see [`Self::standard_srk_with_modulus`] and
    /// [`Self::standard_ecc_srk_with_point`]) whose public key is the given DER
    /// SubjectPublicKeyInfo: an RSA-2048 key with exponent 65537 or an ECC P-256 key.
    pub fn standard_srk_from_spki_der(spki_der: &[u8]) -> Result<TpmPublic, PublicError> {
        use rsa::pkcs8::DecodePublicKey;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(spki_der) {
            if k.size() != 256 || *k.e() != BigUint::from(65537u32) {
                return Err(PublicError::UnsupportedParentKey(format!(
                    "the parent public key is RSA-{} with exponent {}; a standard storage root key is RSA-2048 with exponent 65537, so export the parent's TPM public area with `tpm2_readpublic -o` instead",
                    k.size() * 8,
                    k.e()
                )));
            }
            return Ok(Self::standard_srk_with_modulus(&k.n().to_bytes_be()));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(spki_der) {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let point = k.to_encoded_point(false);
            let x = point.x().map(|c| c.to_vec()).unwrap_or_default();
            let y = point.y().map(|c| c.to_vec()).unwrap_or_default();
            return Ok(Self::standard_ecc_srk_with_point(&x, &y));
        }
        Err(PublicError::UnsupportedParentKey(
            "the parent public key is neither RSA-2048 nor ECC P-256 SubjectPublicKeyInfo; export the parent's TPM public area with `tpm2_readpublic -o` instead".to_string(),
        ))
    }

    /// Like [`Self::standard_srk_from_spki_der`] for a PEM "PUBLIC KEY".
    pub fn standard_srk_from_spki_pem(pem: &str) -> Result<TpmPublic, PublicError> {
        let (label, der) = der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| {
            PublicError::UnsupportedParentKey(format!(
                "the parent public key is not valid PEM ({e}); pass a -----BEGIN PUBLIC KEY----- file"
            ))
        })?;
        if label != "PUBLIC KEY" {
            return Err(PublicError::UnsupportedParentKey(format!(
                "the parent public key PEM is labelled \"{label}\"; pass a -----BEGIN PUBLIC KEY----- file"
            )));
        }
        Self::standard_srk_from_spki_der(&der)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn rsa_sample() -> TpmPublic {
        TpmPublic::standard_srk_with_modulus(&[0xC5; 256])
    }

    #[test]
    fn srk_template_bytes() {
        let bytes = rsa_sample().marshal();
        let mut expected = vec![
            0x00, 0x01, // RSA
            0x00, 0x0B, // SHA256
            0x00, 0x03, 0x04, 0x72, // attributes
            0x00, 0x00, // empty policy
            0x00, 0x06, 0x00, 0x80, 0x00, 0x43, // AES 128 CFB
            0x00, 0x10, // scheme NULL
            0x08, 0x00, // 2048 bits
            0x00, 0x00, 0x00, 0x00, // exponent
            0x01, 0x00, // unique size
        ];
        expected.extend_from_slice(&[0xC5; 256]);
        assert_eq!(bytes, expected);
        assert_eq!(TpmPublic::unmarshal(&bytes).unwrap(), rsa_sample());
        assert_eq!(
            TpmPublic::from_tpm2b(&rsa_sample().to_tpm2b()).unwrap(),
            rsa_sample()
        );
    }

    #[test]
    fn round_trip_with_schemes_and_kdf() {
        let mut p = TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32]);
        p.symmetric = None;
        p.scheme = TPM_ALG_ECDSA;
        p.scheme_hash = TPM_ALG_SHA384;
        p.kdf = 0x0020; // KDF1_SP800_56A
        p.kdf_hash = TPM_ALG_SHA256;
        p.auth_policy = vec![7; 32];
        let bytes = p.marshal();
        assert_eq!(TpmPublic::unmarshal(&bytes).unwrap(), p);
        assert_eq!(TpmPublic::unmarshal(&bytes).unwrap().marshal(), bytes);

        let mut r = rsa_sample();
        r.scheme = TPM_ALG_RSAES; // no hash on the wire
        let bytes = r.marshal();
        assert_eq!(bytes.len(), rsa_sample().marshal().len());
        assert_eq!(TpmPublic::unmarshal(&bytes).unwrap(), r);
        r.scheme = TPM_ALG_RSASSA;
        r.scheme_hash = TPM_ALG_SHA256;
        let bytes = r.marshal();
        assert_eq!(bytes.len(), rsa_sample().marshal().len() + 2);
        assert_eq!(TpmPublic::unmarshal(&bytes).unwrap(), r);
    }

    #[test]
    fn truncation_and_trailing_bytes() {
        let bytes = TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32]).marshal();
        for len in 0..bytes.len() {
            assert!(TpmPublic::unmarshal(&bytes[..len]).is_err(), "len {len}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            TpmPublic::unmarshal(&long),
            Err(PublicError::Marshal(MarshalError::TrailingBytes { .. }))
        ));
    }

    #[test]
    fn rejects_other_types_and_curves() {
        let mut bytes = rsa_sample().marshal();
        bytes[1] = 0x08;
        assert!(matches!(
            TpmPublic::unmarshal(&bytes),
            Err(PublicError::UnsupportedType(_))
        ));
        let mut bytes = TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32]).marshal();
        // curveID follows type(2) nameAlg(2) attrs(4) policy(2) sym(6) scheme(2)
        bytes[19] = 0x05;
        assert_eq!(
            TpmPublic::unmarshal(&bytes),
            Err(PublicError::UnsupportedCurve(5))
        );
    }

    #[test]
    fn name_is_alg_and_digest() {
        let p = rsa_sample();
        let name = p.name().unwrap();
        assert_eq!(&name[..2], &[0x00, 0x0B]);
        assert_eq!(&name[2..], Sha256::digest(p.marshal()).as_slice());
        let mut q = p.clone();
        q.name_alg = TPM_ALG_NULL;
        assert!(q.name().is_err());
    }

    #[test]
    fn key_type_names() {
        assert_eq!(rsa_sample().key_type_name(), "rsa2048");
        assert_eq!(
            TpmPublic::standard_ecc_srk_with_point(&[], &[]).key_type_name(),
            "ecc-p256"
        );
    }

    #[test]
    fn spki_round_trip_through_srk_helpers() {
        let secret = p256::SecretKey::from_slice(&[0x11; 32]).unwrap();
        let spki = {
            use p256::pkcs8::EncodePublicKey;
            secret.public_key().to_public_key_der().unwrap()
        };
        let p = TpmPublic::standard_srk_from_spki_der(spki.as_bytes()).unwrap();
        assert_eq!(p.to_spki_der().unwrap(), spki.as_bytes());
        let pem = p.to_spki_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(TpmPublic::standard_srk_from_spki_pem(&pem).unwrap(), p);
        let ssh = p.to_ssh_public_key("c").unwrap();
        assert_eq!(ssh.algorithm().as_str(), "ecdsa-sha2-nistp256");
        assert!(TpmPublic::standard_srk_from_spki_der(b"junk").is_err());
    }

    fn data(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Public areas and names read from swtpm with `tpm2_readpublic -o ... -n ...` after
    /// `tpm2_createprimary -C o -g sha256 -G rsa2048:aes128cfb` (and ecc256:aes128cfb)
    /// with the TCG storage key attributes.
    #[test]
    fn real_tpm_storage_keys() {
        let bytes = data("swtpm-srk-rsa.pub");
        let srk = TpmPublic::from_tpm2b(&bytes).unwrap();
        assert_eq!(srk.to_tpm2b(), bytes);
        assert_eq!(srk.name().unwrap(), data("swtpm-srk-rsa.name"));
        let KeyParams::Rsa { modulus, .. } = &srk.key else {
            panic!("not RSA")
        };
        assert_eq!(TpmPublic::standard_srk_with_modulus(modulus), srk);
        let pem = String::from_utf8(data("swtpm-srk-rsa.spki.pem")).unwrap();
        assert_eq!(srk.to_spki_pem().unwrap(), pem);
        assert_eq!(TpmPublic::standard_srk_from_spki_pem(&pem).unwrap(), srk);

        let bytes = data("swtpm-srk-ecc.pub");
        let srk = TpmPublic::from_tpm2b(&bytes).unwrap();
        assert_eq!(srk.to_tpm2b(), bytes);
        assert_eq!(srk.name().unwrap(), data("swtpm-srk-ecc.name"));
        let KeyParams::Ecc { x, y, .. } = &srk.key else {
            panic!("not ECC")
        };
        assert_eq!(TpmPublic::standard_ecc_srk_with_point(x, y), srk);
        let spki = srk.to_spki_der().unwrap();
        assert_eq!(TpmPublic::standard_srk_from_spki_der(&spki).unwrap(), srk);
    }

    #[test]
    fn invalid_points_are_errors() {
        let p = TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32]);
        assert!(matches!(
            p.to_spki_der(),
            Err(PublicError::InvalidKey { .. })
        ));
        let p = TpmPublic::standard_ecc_srk_with_point(&[1; 33], &[2; 32]);
        assert!(p.to_spki_der().is_err());
    }
}
