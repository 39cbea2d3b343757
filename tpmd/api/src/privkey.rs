//! Reading software private keys (PEM PKCS#1, PKCS#8, encrypted PKCS#8, SEC1, OpenSSH)
//! so that they can be wrapped for a TPM.
//!
//! Only key types a TPM can hold are accepted: RSA 2048/3072/4096 and ECDSA NIST P-256
//! and P-384. Key material is zeroized when dropped (the RustCrypto key types do this
//! themselves; intermediate buffers here are wrapped in `Zeroizing`).

use std::fmt;

use der::asn1::ObjectIdentifier;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::BigUint;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::keyfile::find_pem_blocks;

/// Errors reading a private key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyReadError {
    /// The key is encrypted and no passphrase was given: prompt and call again.
    #[error("the private key is encrypted; enter its passphrase")]
    PassphraseRequired,
    /// The passphrase did not decrypt the key.
    #[error("wrong passphrase for the private key; try again")]
    WrongPassphrase,
    /// A key type or size a TPM cannot hold.
    #[error("{0}")]
    UnsupportedKeyType(String),
    /// A file format or encryption this reader does not handle.
    #[error("{0}")]
    UnsupportedFormat(String),
    /// Not a readable private key.
    #[error("cannot read the private key: {0}")]
    Malformed(String),
}

/// A software private key of a type a TPM can hold.
// Boxing the RSA key would change the public variant types for a few hundred bytes.
#[allow(clippy::large_enum_variant)]
pub enum SoftwareKey {
    /// RSA 2048, 3072 or 4096 with two primes.
    Rsa(rsa::RsaPrivateKey),
    /// ECDSA on NIST P-256.
    EcP256(p256::SecretKey),
    /// ECDSA on NIST P-384.
    EcP384(p384::SecretKey),
}

impl fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "SoftwareKey({})", self.describe())
    }
}

/// A key read from a file, with the comment OpenSSH keys carry.
#[derive(Debug)]
pub struct ReadKey {
    /// The key.
    pub key: SoftwareKey,
    /// OpenSSH comment, if the format has one.
    pub comment: Option<String>,
}

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_X448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.111");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");

const USE_RSA_OR_ECDSA: &str =
    "use an RSA (2048, 3072 or 4096 bit) or ECDSA (NIST P-256 or P-384) key";

fn ed25519_unsupported() -> KeyReadError {
    KeyReadError::UnsupportedKeyType(
        "Ed25519 keys cannot be held by a TPM; use an RSA or ECDSA key".to_string(),
    )
}

fn unsupported_type(what: &str) -> KeyReadError {
    KeyReadError::UnsupportedKeyType(format!(
        "{what} keys cannot be held by a TPM; {USE_RSA_OR_ECDSA}"
    ))
}

fn unsupported_curve(oid: &ObjectIdentifier) -> KeyReadError {
    let name = if *oid == OID_P521 {
        "NIST P-521".to_string()
    } else if *oid == OID_SECP256K1 {
        "secp256k1".to_string()
    } else {
        format!("with OID {oid}")
    };
    KeyReadError::UnsupportedKeyType(format!(
        "ECDSA curve {name} is not supported by TPMs; {USE_RSA_OR_ECDSA}"
    ))
}

fn malformed(what: &str, err: impl fmt::Display) -> KeyReadError {
    KeyReadError::Malformed(format!("{what} ({err})"))
}

impl SoftwareKey {
    /// "RSA 2048", "ECDSA P-256" or "ECDSA P-384".
    pub fn describe(&self) -> String {
        match self {
            SoftwareKey::Rsa(k) => format!("RSA {}", k.n().bits()),
            SoftwareKey::EcP256(_) => "ECDSA P-256".to_string(),
            SoftwareKey::EcP384(_) => "ECDSA P-384".to_string(),
        }
    }

    /// The public key in OpenSSH form.
    pub fn public_ssh(&self) -> Result<ssh_key::public::KeyData, KeyReadError> {
        use ssh_key::public::{EcdsaPublicKey, KeyData, RsaPublicKey};
        Ok(match self {
            SoftwareKey::Rsa(k) => KeyData::Rsa(
                RsaPublicKey::try_from(k.to_public_key())
                    .map_err(|e| malformed("the RSA public key cannot be encoded", e))?,
            ),
            SoftwareKey::EcP256(k) => KeyData::Ecdsa(EcdsaPublicKey::from(
                &p256::ecdsa::VerifyingKey::from(k.public_key()),
            )),
            SoftwareKey::EcP384(k) => KeyData::Ecdsa(EcdsaPublicKey::from(
                &p384::ecdsa::VerifyingKey::from(k.public_key()),
            )),
        })
    }

    /// Checks that a TPM can hold this key: RSA with 2048, 3072 or 4096 bits, two primes
    /// of half the size, an exponent that fits 32 bits; or a P-256/P-384 key.
    pub fn check_for_tpm(&self) -> Result<(), KeyReadError> {
        let SoftwareKey::Rsa(k) = self else {
            return Ok(());
        };
        let bits = k.n().bits();
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(KeyReadError::UnsupportedKeyType(format!(
                "RSA {bits} keys are not supported; use an RSA key of 2048, 3072 or 4096 bits (or ECDSA P-256/P-384)"
            )));
        }
        if crate::public::biguint_to_u32(k.e()).is_none() {
            return Err(KeyReadError::UnsupportedKeyType(format!(
                "RSA public exponent {} does not fit in 32 bits, which a TPM requires; use a key with exponent 65537",
                k.e()
            )));
        }
        let primes = k.primes();
        if primes.len() != 2 {
            return Err(KeyReadError::UnsupportedKeyType(format!(
                "multi-prime RSA keys ({} primes) cannot be held by a TPM; use a standard two-prime RSA key",
                primes.len()
            )));
        }
        if primes.iter().any(|p| p.bits() > bits / 2) {
            return Err(KeyReadError::UnsupportedKeyType(
                "this RSA key's primes are not of equal size, which a TPM requires; generate a new key with ssh-keygen or openssl".to_string(),
            ));
        }
        Ok(())
    }

    /// The TPM sensitive part: RSA prime p (half the modulus size, big-endian) or the
    /// ECC private scalar padded to the curve size.
    pub(crate) fn sensitive_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyReadError> {
        match self {
            SoftwareKey::Rsa(k) => {
                self.check_for_tpm()?;
                let half = k.size() / 2;
                let p = k
                    .primes()
                    .first()
                    .ok_or_else(|| KeyReadError::Malformed("RSA key has no primes".into()))?;
                let bytes = Zeroizing::new(p.to_bytes_be());
                if bytes.len() > half {
                    return Err(KeyReadError::UnsupportedKeyType(
                        "this RSA key's primes are not of equal size, which a TPM requires"
                            .to_string(),
                    ));
                }
                let mut out = Zeroizing::new(vec![0u8; half - bytes.len()]);
                out.extend_from_slice(&bytes);
                Ok(out)
            }
            SoftwareKey::EcP256(k) => Ok(Zeroizing::new(Zeroizing::new(k.to_bytes()).to_vec())),
            SoftwareKey::EcP384(k) => Ok(Zeroizing::new(Zeroizing::new(k.to_bytes()).to_vec())),
        }
    }
}

/// Reads a private key from PEM (PKCS#1, PKCS#8, encrypted PKCS#8, SEC1, OpenSSH) or
/// DER (PKCS#8, encrypted PKCS#8, PKCS#1, SEC1).
///
/// An encrypted key with `passphrase` None gives [`KeyReadError::PassphraseRequired`]:
/// prompt and call again. A passphrase given for an unencrypted key is ignored.
pub fn read_private_key(data: &[u8], passphrase: Option<&[u8]>) -> Result<ReadKey, KeyReadError> {
    let key = match std::str::from_utf8(data) {
        Ok(text) if text.contains("-----BEGIN ") => read_pem(text, passphrase)?,
        _ => read_der(data, passphrase)?,
    };
    key.key.check_for_tpm()?;
    Ok(key)
}

fn plain(key: SoftwareKey) -> ReadKey {
    ReadKey { key, comment: None }
}

fn read_pem(text: &str, passphrase: Option<&[u8]>) -> Result<ReadKey, KeyReadError> {
    let blocks = find_pem_blocks(text);
    let Some(block) = blocks.iter().find(|b| b.label.ends_with("PRIVATE KEY")) else {
        let found = blocks
            .first()
            .map(|b| b.label.as_str())
            .unwrap_or("nothing");
        return Err(KeyReadError::Malformed(format!(
            "no PEM private key found (the first PEM block is \"{found}\"); pass the private key file, not a public key or certificate"
        )));
    };
    if !block.complete {
        return Err(KeyReadError::Malformed(format!(
            "the {} PEM block has no END line; the file is truncated",
            block.label
        )));
    }
    if block.label == "OPENSSH PRIVATE KEY" {
        return read_openssh(text, passphrase);
    }
    if block.has_legacy_encryption() {
        return Err(KeyReadError::UnsupportedFormat(
            "legacy OpenSSL-encrypted PEM keys (Proc-Type: 4,ENCRYPTED) are not supported; convert the key with `ssh-keygen -p -m PKCS8 -f KEYFILE` or `openssl pkcs8 -topk8 -in KEYFILE -out NEWFILE`".to_string(),
        ));
    }
    let der = block.decode().map_err(KeyReadError::Malformed)?;
    match block.label.as_str() {
        "RSA PRIVATE KEY" => read_pkcs1(&der).map(plain),
        "PRIVATE KEY" => read_pkcs8(&der).map(plain),
        "ENCRYPTED PRIVATE KEY" => read_encrypted_pkcs8(&der, passphrase).map(plain),
        "EC PRIVATE KEY" => read_sec1(&der).map(plain),
        "DSA PRIVATE KEY" => Err(unsupported_type("DSA")),
        "TSS2 PRIVATE KEY" => Err(KeyReadError::UnsupportedFormat(
            "this is already a TPM-wrapped key (TSS2 PRIVATE KEY); use it directly instead of wrapping it again".to_string(),
        )),
        "TSS KEY BLOB" => Err(KeyReadError::UnsupportedFormat(
            "this is a TPM 1.2 key blob; it is already TPM-wrapped and cannot be wrapped again".to_string(),
        )),
        other => Err(KeyReadError::UnsupportedFormat(format!(
            "PEM \"{other}\" keys are not supported; convert the key to PKCS#8 with `openssl pkcs8 -topk8`"
        ))),
    }
}

fn read_der(der: &[u8], passphrase: Option<&[u8]>) -> Result<ReadKey, KeyReadError> {
    if pkcs8::PrivateKeyInfo::try_from(der).is_ok() {
        return read_pkcs8(der).map(plain);
    }
    if pkcs8::EncryptedPrivateKeyInfo::try_from(der).is_ok() {
        return read_encrypted_pkcs8(der, passphrase).map(plain);
    }
    if pkcs1::RsaPrivateKey::try_from(der).is_ok() {
        return read_pkcs1(der).map(plain);
    }
    if sec1::EcPrivateKey::try_from(der).is_ok() {
        return read_sec1(der).map(plain);
    }
    Err(KeyReadError::Malformed(
        "the data is neither a PEM private key nor a DER PKCS#8, PKCS#1 or SEC1 private key"
            .to_string(),
    ))
}

fn read_pkcs1(der: &[u8]) -> Result<SoftwareKey, KeyReadError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    rsa::RsaPrivateKey::from_pkcs1_der(der)
        .map(SoftwareKey::Rsa)
        .map_err(|e| malformed("invalid PKCS#1 RSA private key", e))
}

fn read_pkcs8(der: &[u8]) -> Result<SoftwareKey, KeyReadError> {
    use pkcs8::DecodePrivateKey;
    let info =
        pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| malformed("invalid PKCS#8 key", e))?;
    let oid = info.algorithm.oid;
    if oid == OID_RSA {
        rsa::RsaPrivateKey::from_pkcs8_der(der)
            .map(SoftwareKey::Rsa)
            .map_err(|e| malformed("invalid PKCS#8 RSA private key", e))
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|e| malformed("PKCS#8 EC key without a named curve", e))?;
        if curve == OID_P256 {
            p256::SecretKey::from_pkcs8_der(der)
                .map(SoftwareKey::EcP256)
                .map_err(|e| malformed("invalid PKCS#8 P-256 private key", e))
        } else if curve == OID_P384 {
            p384::SecretKey::from_pkcs8_der(der)
                .map(SoftwareKey::EcP384)
                .map_err(|e| malformed("invalid PKCS#8 P-384 private key", e))
        } else {
            Err(unsupported_curve(&curve))
        }
    } else if oid == OID_ED25519 {
        Err(ed25519_unsupported())
    } else if oid == OID_ED448 {
        Err(unsupported_type("Ed448"))
    } else if oid == OID_X25519 || oid == OID_X448 {
        Err(unsupported_type("X25519/X448 key-agreement"))
    } else if oid == OID_DSA {
        Err(unsupported_type("DSA"))
    } else if oid == OID_RSA_PSS {
        Err(KeyReadError::UnsupportedKeyType(
            "RSA-PSS-restricted keys are not supported; convert the key to a plain RSA key with `openssl pkey -traditional`".to_string(),
        ))
    } else {
        Err(KeyReadError::UnsupportedKeyType(format!(
            "keys of algorithm {oid} are not supported; {USE_RSA_OR_ECDSA}"
        )))
    }
}

fn read_encrypted_pkcs8(
    der: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<SoftwareKey, KeyReadError> {
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| malformed("invalid encrypted PKCS#8 key", e))?;
    let Some(passphrase) = passphrase else {
        return Err(KeyReadError::PassphraseRequired);
    };
    let decrypted = match info.decrypt(passphrase) {
        Ok(doc) => doc,
        // pkcs5 0.7 reports bad CBC padding, i.e. a wrong passphrase, as EncryptFailed.
        Err(pkcs8::Error::EncryptedPrivateKey(
            pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed,
        )) => return Err(KeyReadError::WrongPassphrase),
        Err(pkcs8::Error::EncryptedPrivateKey(e)) => {
            return Err(KeyReadError::UnsupportedFormat(format!(
                "the key's encryption is not supported ({e}); re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEYFILE -out NEWFILE`"
            )))
        }
        Err(e) => return Err(malformed("invalid encrypted PKCS#8 key", e)),
    };
    if pkcs8::PrivateKeyInfo::try_from(decrypted.as_bytes()).is_err() {
        // Decryption "succeeded" only by chance of valid padding: the passphrase is wrong.
        return Err(KeyReadError::WrongPassphrase);
    }
    read_pkcs8(decrypted.as_bytes())
}

fn read_sec1(der: &[u8]) -> Result<SoftwareKey, KeyReadError> {
    let key = sec1::EcPrivateKey::try_from(der)
        .map_err(|e| malformed("invalid SEC1 EC private key", e))?;
    let Some(curve) = key.parameters.and_then(|p| p.named_curve()) else {
        return Err(KeyReadError::Malformed(
            "the SEC1 EC private key does not name its curve; convert it with `openssl pkcs8 -topk8`".to_string(),
        ));
    };
    if curve == OID_P256 {
        p256::SecretKey::from_sec1_der(der)
            .map(SoftwareKey::EcP256)
            .map_err(|e| malformed("invalid SEC1 P-256 private key", e))
    } else if curve == OID_P384 {
        p384::SecretKey::from_sec1_der(der)
            .map(SoftwareKey::EcP384)
            .map_err(|e| malformed("invalid SEC1 P-384 private key", e))
    } else {
        Err(unsupported_curve(&curve))
    }
}

fn ssh_algorithm_check(alg: &ssh_key::Algorithm) -> Result<(), KeyReadError> {
    use ssh_key::{Algorithm, EcdsaCurve};
    match alg {
        Algorithm::Rsa { .. } => Ok(()),
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256 | EcdsaCurve::NistP384,
        } => Ok(()),
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        } => Err(KeyReadError::UnsupportedKeyType(format!(
            "ECDSA curve NIST P-521 is not supported by TPMs; {USE_RSA_OR_ECDSA}"
        ))),
        Algorithm::Ed25519 => Err(ed25519_unsupported()),
        Algorithm::Dsa => Err(unsupported_type("DSA")),
        Algorithm::SkEcdsaSha2NistP256 | Algorithm::SkEd25519 => Err(
            KeyReadError::UnsupportedKeyType(
                "security-key (FIDO) SSH keys already live in hardware and cannot be moved into a TPM".to_string(),
            ),
        ),
        other => Err(unsupported_type(other.as_str())),
    }
}

fn read_openssh(text: &str, passphrase: Option<&[u8]>) -> Result<ReadKey, KeyReadError> {
    let parsed = ssh_key::PrivateKey::from_openssh(text.trim())
        .map_err(|e| malformed("invalid OpenSSH private key", e))?;
    // Refuse unusable key types before asking for a passphrase.
    ssh_algorithm_check(&parsed.algorithm())?;
    let decrypted;
    let key = if parsed.is_encrypted() {
        let Some(passphrase) = passphrase else {
            return Err(KeyReadError::PassphraseRequired);
        };
        decrypted = parsed.decrypt(passphrase).map_err(|e| match e {
            ssh_key::Error::Crypto => KeyReadError::WrongPassphrase,
            ssh_key::Error::AlgorithmUnknown | ssh_key::Error::AlgorithmUnsupported { .. } => {
                KeyReadError::UnsupportedFormat(format!(
                    "the OpenSSH key's cipher or KDF is not supported ({e}); re-encrypt it with `ssh-keygen -p -f KEYFILE`"
                ))
            }
            other => malformed("cannot decrypt the OpenSSH private key", other),
        })?;
        &decrypted
    } else {
        &parsed
    };
    let comment = Some(key.comment().to_string()).filter(|c| !c.is_empty());
    let software = software_key_from_ssh(key.key_data())?;
    Ok(ReadKey {
        key: software,
        comment,
    })
}

/// Converts OpenSSH key pair data (as read from a file or received by an ssh-agent) into
/// a [`SoftwareKey`]. RSA keys are rebuilt from n, e, d, p and q: ssh-key 0.6's own
/// RsaKeypair conversion is buggy.
pub fn software_key_from_ssh(
    data: &ssh_key::private::KeypairData,
) -> Result<SoftwareKey, KeyReadError> {
    let algorithm = data
        .algorithm()
        .map_err(|e| malformed("unknown OpenSSH key algorithm", e))?;
    let key = match data {
        ssh_key::private::KeypairData::Rsa(pair) => {
            let num = |m: &ssh_key::Mpint, what: &str| {
                BigUint::try_from(m).map_err(|e| malformed(what, e))
            };
            let n = num(&pair.public.n, "invalid RSA modulus")?;
            let e = num(&pair.public.e, "invalid RSA exponent")?;
            let d = num(&pair.private.d, "invalid RSA private exponent")?;
            let p = num(&pair.private.p, "invalid RSA prime")?;
            let q = num(&pair.private.q, "invalid RSA prime")?;
            rsa::RsaPrivateKey::from_components(n, e, d, vec![p, q])
                .map(SoftwareKey::Rsa)
                .map_err(|e| malformed("inconsistent OpenSSH RSA private key", e))?
        }
        ssh_key::private::KeypairData::Ecdsa(pair) => match pair {
            ssh_key::private::EcdsaKeypair::NistP256 { private, .. } => {
                p256::SecretKey::from_slice(private.as_slice())
                    .map(SoftwareKey::EcP256)
                    .map_err(|e| malformed("invalid OpenSSH P-256 private key", e))?
            }
            ssh_key::private::EcdsaKeypair::NistP384 { private, .. } => {
                p384::SecretKey::from_slice(private.as_slice())
                    .map(SoftwareKey::EcP384)
                    .map_err(|e| malformed("invalid OpenSSH P-384 private key", e))?
            }
            ssh_key::private::EcdsaKeypair::NistP521 { .. } => {
                return Err(ssh_algorithm_check(&algorithm)
                    .err()
                    .unwrap_or_else(|| unsupported_type("P-521")))
            }
        },
        _ => {
            ssh_algorithm_check(&algorithm)?;
            return Err(unsupported_type(algorithm.as_str()));
        }
    };
    key.check_for_tpm()?;
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::public::TpmPublic;

    const PASS: &[u8] = b"test-passphrase";

    fn data(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn read(name: &str, pass: Option<&[u8]>) -> Result<ReadKey, KeyReadError> {
        read_private_key(&data(name), pass)
    }

    fn spki_pem(key: &SoftwareKey) -> String {
        TpmPublic::for_software_key(key, false)
            .to_spki_pem()
            .unwrap()
    }

    fn expected_spki(name: &str) -> String {
        String::from_utf8(data(name)).unwrap()
    }

    #[test]
    fn rsa_formats_agree() {
        let want = expected_spki("rsa2048-pkcs1.spki.pem");
        for (name, pass) in [
            ("rsa2048-pkcs1.pem", None),
            ("rsa2048-pkcs8.pem", None),
            ("rsa2048-pkcs8.der", None),
            ("rsa2048-pkcs8-enc.pem", Some(PASS)),
        ] {
            let k = read(name, pass).unwrap();
            assert_eq!(k.key.describe(), "RSA 2048", "{name}");
            assert_eq!(spki_pem(&k.key), want, "{name}");
            assert_eq!(k.comment, None);
            assert_eq!(k.key.sensitive_bytes().unwrap().len(), 128);
        }
        let k = read("rsa3072-pkcs1.pem", None).unwrap();
        assert_eq!(k.key.describe(), "RSA 3072");
        assert_eq!(spki_pem(&k.key), expected_spki("rsa3072-pkcs1.spki.pem"));
    }

    #[test]
    fn ec_formats_agree() {
        let want = expected_spki("p256-sec1.spki.pem");
        for (name, pass) in [
            ("p256-sec1.pem", None),
            ("p256-pkcs8.pem", None),
            ("p256-pkcs8-enc.pem", Some(PASS)),
        ] {
            let k = read(name, pass).unwrap();
            assert_eq!(k.key.describe(), "ECDSA P-256", "{name}");
            assert_eq!(spki_pem(&k.key), want, "{name}");
            assert_eq!(k.key.sensitive_bytes().unwrap().len(), 32);
        }
        let k = read("p384-pkcs8-enc-3des-sha1.pem", Some(PASS)).unwrap();
        assert_eq!(spki_pem(&k.key), expected_spki("p384-sec1.spki.pem"));
        let k = read("p384-sec1.pem", None).unwrap();
        assert_eq!(k.key.describe(), "ECDSA P-384");
        assert_eq!(spki_pem(&k.key), expected_spki("p384-sec1.spki.pem"));
        assert_eq!(k.key.sensitive_bytes().unwrap().len(), 48);
    }

    fn ssh_pub_line(key: &ReadKey) -> String {
        let comment = key.comment.clone().unwrap_or_default();
        ssh_key::PublicKey::new(key.key.public_ssh().unwrap(), comment)
            .to_openssh()
            .unwrap()
    }

    #[test]
    fn openssh_keys() {
        for (name, pass, comment, desc) in [
            ("ssh-rsa2048", None, "rsa-comment@test", "RSA 2048"),
            ("ssh-rsa2048-enc", Some(PASS), "rsa-enc@test", "RSA 2048"),
            ("ssh-p256", None, "ecdsa256@test", "ECDSA P-256"),
            (
                "ssh-p384-enc",
                Some(PASS),
                "ecdsa384-enc@test",
                "ECDSA P-384",
            ),
        ] {
            let k = read(name, pass).unwrap();
            assert_eq!(k.comment.as_deref(), Some(comment), "{name}");
            assert_eq!(k.key.describe(), desc, "{name}");
            let want = String::from_utf8(data(&format!("{name}.pub"))).unwrap();
            assert_eq!(ssh_pub_line(&k), want.trim(), "{name}");
            // The TPM public area gives the same OpenSSH key.
            let from_tpm = TpmPublic::for_software_key(&k.key, false)
                .to_ssh_public_key(comment)
                .unwrap();
            assert_eq!(from_tpm.to_openssh().unwrap(), want.trim(), "{name}");
        }
    }

    #[test]
    fn passphrases() {
        for name in [
            "rsa2048-pkcs8-enc.pem",
            "p256-pkcs8-enc.pem",
            "p384-pkcs8-enc-3des-sha1.pem",
            "ssh-p384-enc",
        ] {
            assert_eq!(
                read(name, None).unwrap_err(),
                KeyReadError::PassphraseRequired,
                "{name}"
            );
            assert_eq!(
                read(name, Some(b"wrong")).unwrap_err(),
                KeyReadError::WrongPassphrase,
                "{name}"
            );
        }
        // A passphrase for an unencrypted key is ignored.
        assert!(read("p256-sec1.pem", Some(PASS)).is_ok());
    }

    #[test]
    fn unsupported_keys() {
        let msg = |r: Result<ReadKey, KeyReadError>| match r {
            Err(KeyReadError::UnsupportedKeyType(m)) => m,
            other => panic!("expected UnsupportedKeyType, got {other:?}"),
        };
        let ed = "Ed25519 keys cannot be held by a TPM; use an RSA or ECDSA key";
        assert_eq!(msg(read("ssh-ed25519", None)), ed);
        // Refused before any passphrase prompt.
        assert_eq!(msg(read("ssh-ed25519-enc", None)), ed);
        assert_eq!(msg(read("ed25519-pkcs8.pem", None)), ed);
        assert!(msg(read("dsa-pkcs8.pem", None)).contains("DSA"));
        assert!(msg(read("rsa1024-pkcs1.pem", None)).contains("RSA 1024"));
        assert!(msg(read("k256-sec1.pem", None)).contains("secp256k1"));
    }

    #[test]
    fn legacy_encryption_is_refused_with_advice() {
        match read("rsa2048-legacy-enc.pem", Some(PASS)) {
            Err(KeyReadError::UnsupportedFormat(m)) => {
                assert!(m.contains("ssh-keygen -p -m PKCS8"), "{m}");
                assert!(m.contains("openssl pkcs8 -topk8"), "{m}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn garbage_and_truncation() {
        assert!(matches!(
            read_private_key(b"not a key", None),
            Err(KeyReadError::Malformed(_))
        ));
        assert!(matches!(
            read_private_key(&data("rsa2048-pkcs1.spki.pem"), None),
            Err(KeyReadError::Malformed(_))
        ));
        for name in ["p256-sec1.pem", "ssh-p256", "p256-pkcs8-enc.pem"] {
            let bytes = data(name);
            for len in (0..bytes.len() - 1).step_by(7) {
                assert!(
                    read_private_key(&bytes[..len], Some(PASS)).is_err(),
                    "{name} {len}"
                );
            }
        }
        let der = data("rsa2048-pkcs8.der");
        for len in (0..der.len()).step_by(13) {
            assert!(read_private_key(&der[..len], None).is_err(), "der {len}");
        }
    }

    #[test]
    fn debug_hides_key_material() {
        let k = read("p256-sec1.pem", None).unwrap();
        assert_eq!(format!("{:?}", k.key), "SoftwareKey(ECDSA P-256)");
    }
}
