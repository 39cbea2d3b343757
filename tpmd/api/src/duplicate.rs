//! Builds a TPM2_Import-able duplicate of a software key, entirely in software.
//!
//! This is TPM 2.0 Part 1 "Protected Storage" duplication with an outer wrapper only
//! (no inner wrapper, symmetricAlg TPM_ALG_NULL):
//!
//! 1. sensitive = TPM2B_SENSITIVE { type, authValue, seedValue (empty), prime p or scalar d }
//! 2. seed = random, nameAlg-digest-sized; sent to the parent as an encrypted secret:
//!    RSA-OAEP with label "DUPLICATE" for an RSA parent, ECDH + KDFe for an ECC parent
//! 3. symKey = KDFa(nameAlg_parent, seed, "STORAGE", name, "", parent symmetric bits)
//! 4. encSensitive = AES-CFB(symKey, IV = 0, sensitive)
//! 5. hmacKey = KDFa(nameAlg_parent, seed, "INTEGRITY", "", "", digest bits)
//! 6. duplicate = TPM2B(HMAC(hmacKey, encSensitive || name)) || encSensitive
//!
//! The plaintext key never leaves the calling process; tpmd only imports the result.

use thiserror::Error;
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError};
pub use crate::crypto::{kdfa, kdfe};
use crate::keyfile::{KeyFileKind, TpmKeyFile};
use crate::marshal::*;
use crate::privkey::{KeyReadError, SoftwareKey};
use crate::public::{PublicError, TpmPublic};

/// Errors building a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DuplicateError {
    /// The key's auth value is longer than its name algorithm's digest.
    #[error("the key password is {len} bytes long but at most {max} bytes are allowed; choose a shorter password")]
    AuthTooLong {
        /// Length given.
        len: usize,
        /// Maximum (digest size of the key's name algorithm).
        max: usize,
    },
    /// The software key cannot be held by a TPM.
    #[error(transparent)]
    Key(#[from] KeyReadError),
    /// A public area could not be used.
    #[error(transparent)]
    Public(#[from] PublicError),
    /// The parent is not a storage key this builder can wrap for.
    #[error("cannot wrap for this parent: {0}")]
    UnsupportedParent(String),
    /// A cryptographic operation failed.
    #[error("cryptographic operation failed while wrapping the key: {0}")]
    Crypto(String),
}

impl From<CryptoError> for DuplicateError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Public(e) => DuplicateError::Public(e),
            CryptoError::AesKeySize(bits) => DuplicateError::UnsupportedParent(format!(
                "the parent's AES key size of {bits} bits is not 128, 192 or 256"
            )),
            CryptoError::Failed(detail) => DuplicateError::Crypto(detail),
        }
    }
}

fn hmac_parts(
    hash_alg: u16,
    key: &[u8],
    parts: &[&[u8]],
) -> Result<Zeroizing<Vec<u8>>, DuplicateError> {
    Ok(crypto::hmac(hash_alg, key, parts)?)
}

/// AES-CFB with an all-zero IV, in place: the outer wrapper's encryption.
fn aes_cfb_encrypt(key: &[u8], buf: &mut [u8]) -> Result<(), DuplicateError> {
    Ok(crypto::aes_cfb_encrypt(key, &[0u8; 16], buf)?)
}

/// A fresh seed encrypted to the parent (label "DUPLICATE").
fn make_seed(parent: &TpmPublic) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), DuplicateError> {
    Ok(crypto::encrypt_secret(parent, "DUPLICATE")?)
}

fn digest_size_of(hash_alg: u16) -> Result<usize, DuplicateError> {
    digest_size(hash_alg).ok_or_else(|| PublicError::UnsupportedNameAlg(alg_name(hash_alg)).into())
}

/// The TPM2B_SENSITIVE of a key: type, authValue, empty seedValue, and the private part.
fn sensitive_area(key: &SoftwareKey, auth: &[u8]) -> Result<Zeroizing<Vec<u8>>, DuplicateError> {
    let key_type = match key {
        SoftwareKey::Rsa(_) => TPM_ALG_RSA,
        SoftwareKey::EcP256(_) | SoftwareKey::EcP384(_) => TPM_ALG_ECC,
    };
    let secret = key.sensitive_bytes()?;
    let mut inner = Zeroizing::new(Vec::with_capacity(secret.len() + auth.len() + 8));
    put_u16(&mut inner, key_type);
    put_tpm2b(&mut inner, auth);
    put_tpm2b(&mut inner, &[]);
    put_tpm2b(&mut inner, &secret);
    let mut out = Zeroizing::new(Vec::with_capacity(inner.len() + 2));
    put_tpm2b(&mut out, &inner);
    Ok(out)
}

/// Checks the parent is a storage key and returns its AES key size in bits.
fn parent_symmetric_bits(parent: &TpmPublic) -> Result<u32, DuplicateError> {
    if !parent.has_attributes(TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT) {
        return Err(DuplicateError::UnsupportedParent(
            "it is not a storage key (restricted and decrypt attributes are required); use the storage root key, 0x81000001 by default".to_string(),
        ));
    }
    match parent.symmetric {
        Some(sym) if sym.algorithm == TPM_ALG_AES && sym.mode == TPM_ALG_CFB => {
            Ok(u32::from(sym.key_bits))
        }
        Some(sym) => Err(DuplicateError::UnsupportedParent(format!(
            "its symmetric algorithm is {} in mode {}, not AES-CFB",
            alg_name(sym.algorithm),
            alg_name(sym.mode)
        ))),
        None => Err(DuplicateError::UnsupportedParent(
            "it has no symmetric algorithm, so it is not a storage key".to_string(),
        )),
    }
}

/// The outer-wrapped duplicate (TPM2B_PRIVATE) of a sensitive area for an object with
/// `name`, under `seed`, for `parent`.
fn outer_wrap(
    sensitive: &[u8],
    name: &[u8],
    seed: &[u8],
    parent: &TpmPublic,
    sym_bits: u32,
) -> Result<Vec<u8>, DuplicateError> {
    let hash_alg = parent.name_alg;
    let digest_bits = (digest_size_of(hash_alg)? * 8) as u32;
    let sym_key = kdfa(hash_alg, seed, "STORAGE", name, &[], sym_bits)?;
    // Plaintext until encrypted in place, so zeroized if encryption fails.
    let mut enc_sensitive = Zeroizing::new(sensitive.to_vec());
    aes_cfb_encrypt(&sym_key, &mut enc_sensitive)?;
    let hmac_key = kdfa(hash_alg, seed, "INTEGRITY", &[], &[], digest_bits)?;
    let outer_hmac = hmac_parts(hash_alg, &hmac_key, &[&enc_sensitive, name])?;
    let mut duplicate = Vec::with_capacity(outer_hmac.len() + enc_sensitive.len() + 2);
    put_tpm2b(&mut duplicate, &outer_hmac);
    duplicate.extend_from_slice(&enc_sensitive);
    Ok(tpm2b(&duplicate))
}

/// Wraps `key` for the storage key `parent` (at `parent_handle`) so that the parent's
/// TPM can import it with TPM2_Import.
///
/// `auth` becomes the key's password (empty for none; at most 32 bytes, the SHA-256
/// digest size). The result is an importable TSS2 key file: public is the TPM2B_PUBLIC
/// of [`TpmPublic::for_software_key`] (noDA exactly when `auth` is empty), private the
/// TPM2B_PRIVATE duplicate and secret the TPM2B_ENCRYPTED_SECRET.
pub fn wrap_for_parent(
    key: &SoftwareKey,
    auth: &[u8],
    parent: &TpmPublic,
    parent_handle: u32,
) -> Result<TpmKeyFile, DuplicateError> {
    wrap_with_policy(key, auth, None, parent, parent_handle)
}

/// [`wrap_for_parent`] for a key used through a policy session: its public area carries
/// `policy_digest` as authPolicy and no userWithAuth, so that the auth value alone (which
/// a PCR-bound key's policy may also ask for, with PolicyAuthValue) never suffices. The
/// key file's `policy` fields are the caller's to fill in.
pub fn wrap_with_policy(
    key: &SoftwareKey,
    auth: &[u8],
    policy_digest: Option<&[u8]>,
    parent: &TpmPublic,
    parent_handle: u32,
) -> Result<TpmKeyFile, DuplicateError> {
    key.check_for_tpm()?;
    let mut public = TpmPublic::for_software_key(key, !auth.is_empty());
    if let Some(digest) = policy_digest {
        let size = digest_size_of(public.name_alg)?;
        if digest.len() != size {
            return Err(DuplicateError::Crypto(format!(
                "a policy digest of {} bytes for a key whose name algorithm makes {size}",
                digest.len()
            )));
        }
        public.auth_policy = digest.to_vec();
        public.attributes &= !TPMA_OBJECT_USER_WITH_AUTH;
    }
    let max = digest_size_of(public.name_alg)?;
    if auth.len() > max {
        return Err(DuplicateError::AuthTooLong {
            len: auth.len(),
            max,
        });
    }
    let sym_bits = parent_symmetric_bits(parent)?;
    let name = public.name()?;
    let sensitive = sensitive_area(key, auth)?;
    let (seed, encrypted_seed) = make_seed(parent)?;
    let private = outer_wrap(&sensitive, &name, &seed, parent, sym_bits)?;
    Ok(TpmKeyFile {
        kind: KeyFileKind::Importable,
        empty_auth: auth.is_empty(),
        parent: parent_handle,
        public: public.to_tpm2b(),
        private,
        secret: Some(tpm2b(&encrypted_seed)),
        policy: Vec::new(),
        auth_policies: Vec::new(),
        description: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::privkey::read_private_key;
    use crate::public::KeyParams;
    use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
    use rsa::traits::PrivateKeyParts;
    use sha2::Sha256;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn data_key(name: &str) -> SoftwareKey {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        read_private_key(&std::fs::read(path).unwrap(), None)
            .unwrap()
            .key
    }

    const K: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn kdfa_matches_openssl_kbkdf() {
        // `openssl kdf -keylen 16 -kdfopt mac:HMAC -kdfopt digest:SHA256 -kdfopt hexkey:K
        //  -kdfopt salt:STORAGE -kdfopt hexinfo:000b1122334455 KBKDF`
        let out = kdfa(
            TPM_ALG_SHA256,
            &hex(K),
            "STORAGE",
            &hex("000b1122"),
            &hex("334455"),
            128,
        )
        .unwrap();
        assert_eq!(*out, hex("89:1E:E6:63:28:88:A5:45:A9:11:15:23:CE:F9:F4:E0"));
        // Two HMAC blocks, truncated: -keylen 40 salt:INTEGRITY.
        let out = kdfa(TPM_ALG_SHA256, &hex(K), "INTEGRITY", &[], &[], 320).unwrap();
        assert_eq!(
            *out,
            hex("5D:66:7F:96:85:5D:F2:60:8A:69:8B:FB:88:24:B1:26:87:23:B3:E1:0F:4D:D1:4C:ED:38:99:B1:62:E3:E9:39:C5:D5:FC:37:5E:5A:91:6F")
        );
        let out = kdfa(TPM_ALG_SHA1, &hex(K), "STORAGE", &hex("00040102"), &[], 128).unwrap();
        assert_eq!(*out, hex("76:9E:2E:1F:27:80:11:CA:18:BA:DE:D3:B6:C1:F2:85"));
        assert!(kdfa(TPM_ALG_NULL, &hex(K), "X", &[], &[], 128).is_err());
    }

    #[test]
    fn kdfe_layout() {
        use sha2::Digest;
        let out = kdfe(TPM_ALG_SHA256, b"zz", "DUPLICATE", b"uu", b"vv", 256).unwrap();
        let want = Sha256::digest(b"\x00\x00\x00\x01zzDUPLICATE\x00uuvv");
        assert_eq!(out.as_slice(), want.as_slice());
        let long = kdfe(TPM_ALG_SHA256, b"zz", "DUPLICATE", b"uu", b"vv", 260).unwrap();
        // 260 bits: 33 bytes, the 4 spare leading bits cleared.
        assert_eq!(long.len(), 33);
        assert_eq!(long[0], want[0] & 0x0F);
        assert_eq!(&long[1..32], &want[1..]);
    }

    #[test]
    fn aes_cfb_is_full_block_cfb128() {
        // NIST SP 800-38A F.3.13 CFB128-AES128.Encrypt, with IV zero replaced: use the
        // property that CFB with IV 0 encrypts the first block as P ^ AES(K, 0).
        use aes::cipher::{BlockEncrypt, KeyInit};
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let mut block = aes::Block::default();
        aes::Aes128::new_from_slice(&key)
            .unwrap()
            .encrypt_block(&mut block);
        let mut buf = vec![0x5Au8; 20];
        aes_cfb_encrypt(&key, &mut buf).unwrap();
        for i in 0..16 {
            assert_eq!(buf[i], 0x5A ^ block[i]);
        }
    }

    #[test]
    fn a_policy_key_carries_the_digest_and_no_user_with_auth() {
        let key = data_key("p256-sec1.pem");
        let (_, parent) = rsa_parent();
        for auth in [&b""[..], b"pin"] {
            let plain = wrap_for_parent(&key, auth, &parent, 0x8100_0001).unwrap();
            let plain = plain.public_area().unwrap();
            assert!(plain.has_attributes(TPMA_OBJECT_USER_WITH_AUTH));
            assert!(plain.auth_policy.is_empty());
            let bound =
                wrap_with_policy(&key, auth, Some(&[0xAB; 32]), &parent, 0x8100_0001).unwrap();
            let public = bound.public_area().unwrap();
            assert_eq!(public.auth_policy, vec![0xAB; 32]);
            assert!(!public.has_attributes(TPMA_OBJECT_USER_WITH_AUTH));
            assert_eq!(
                public.has_attributes(TPMA_OBJECT_NO_DA),
                auth.is_empty(),
                "noDA exactly when there is no auth value"
            );
            assert_eq!(public.key, plain.key);
            assert!(bound.policy.is_empty(), "the caller writes the statements");
        }
        assert!(wrap_with_policy(&key, b"", Some(&[1; 20]), &parent, 0x8100_0001).is_err());
    }

    fn rsa_parent() -> (rsa::RsaPrivateKey, TpmPublic) {
        let SoftwareKey::Rsa(k) = data_key("rsa2048-pkcs1.pem") else {
            panic!("not RSA")
        };
        use rsa::traits::PublicKeyParts;
        let public = TpmPublic::standard_srk_with_modulus(&k.n().to_bytes_be());
        (k, public)
    }

    /// The inverse of wrap_for_parent, as a TPM does it, for an RSA parent.
    fn unwrap_rsa(file: &TpmKeyFile, parent_key: &rsa::RsaPrivateKey) -> Vec<u8> {
        let secret = parse_tpm2b(file.secret.as_ref().unwrap(), "secret").unwrap();
        let seed = parent_key
            .decrypt(
                rsa::Oaep::new_with_label::<Sha256, _>("DUPLICATE\0"),
                secret,
            )
            .unwrap();
        assert_eq!(seed.len(), 32);
        let public = TpmPublic::from_tpm2b(&file.public).unwrap();
        let name = public.name().unwrap();
        let dup = parse_tpm2b(&file.private, "private").unwrap();
        let mut r = Reader::new(dup);
        let outer_hmac = r.read_tpm2b("hmac").unwrap();
        let enc = r.read_bytes(r.remaining(), "enc").unwrap();
        let hmac_key = kdfa(TPM_ALG_SHA256, &seed, "INTEGRITY", &[], &[], 256).unwrap();
        let want = hmac_parts(TPM_ALG_SHA256, &hmac_key, &[enc, &name]).unwrap();
        assert_eq!(outer_hmac, want.as_slice());
        let sym = kdfa(TPM_ALG_SHA256, &seed, "STORAGE", &name, &[], 128).unwrap();
        let mut plain = enc.to_vec();
        cfb_mode::Decryptor::<aes::Aes128>::new_from_slices(&sym, &[0u8; 16])
            .unwrap()
            .decrypt(&mut plain);
        plain
    }

    #[test]
    fn rsa_key_for_rsa_parent_unwraps() {
        let (parent_key, parent) = rsa_parent();
        let key = data_key("rsa2048-pkcs8.pem");
        let file = wrap_for_parent(&key, b"secret", &parent, 0x8100_0001).unwrap();
        assert_eq!(file.kind, KeyFileKind::Importable);
        assert!(!file.empty_auth);
        assert_eq!(file.parent, 0x8100_0001);
        // TPM2B_ENCRYPTED_SECRET: 2 + 256. TPM2B_PRIVATE: 2 + (2 + 32) + TPM2B_SENSITIVE,
        // TPM2B_SENSITIVE: 2 + type 2 + auth (2 + 6) + seed 2 + prime (2 + 128) = 144.
        assert_eq!(file.secret.as_ref().unwrap().len(), 258);
        assert_eq!(file.private.len(), 2 + 34 + 144);

        let plain = unwrap_rsa(&file, &parent_key);
        let inner = parse_tpm2b(&plain, "sensitive").unwrap();
        let mut r = Reader::new(inner);
        assert_eq!(r.read_u16("type").unwrap(), TPM_ALG_RSA);
        assert_eq!(r.read_tpm2b("auth").unwrap(), b"secret");
        assert_eq!(r.read_tpm2b("seed").unwrap(), b"");
        let prime = r.read_tpm2b("prime").unwrap();
        r.finish("sensitive").unwrap();
        let SoftwareKey::Rsa(k) = &key else { panic!() };
        assert_eq!(prime, k.primes()[0].to_bytes_be().as_slice());

        let public = file.public_area().unwrap();
        assert_eq!(
            public.attributes,
            TPMA_OBJECT_USER_WITH_AUTH | TPMA_OBJECT_SIGN | TPMA_OBJECT_DECRYPT
        );
        // Round trip through the file format.
        assert_eq!(TpmKeyFile::parse(file.to_pem().as_bytes()).unwrap(), file);
    }

    #[test]
    fn no_da_exactly_for_keys_without_auth() {
        let (_, parent) = rsa_parent();
        for name in ["rsa2048-pkcs8.pem", "p256-sec1.pem"] {
            let key = data_key(name);
            let open = wrap_for_parent(&key, b"", &parent, 0x8100_0001).unwrap();
            assert!(open.empty_auth);
            assert!(open
                .public_area()
                .unwrap()
                .has_attributes(TPMA_OBJECT_NO_DA));
            let guarded = wrap_for_parent(&key, b"pin", &parent, 0x8100_0001).unwrap();
            assert!(!guarded
                .public_area()
                .unwrap()
                .has_attributes(TPMA_OBJECT_NO_DA));
        }
    }

    #[test]
    fn ecc_key_sensitive_layout() {
        let (parent_key, parent) = rsa_parent();
        let key = data_key("p256-sec1.pem");
        let file = wrap_for_parent(&key, b"", &parent, 0x8100_0001).unwrap();
        assert!(file.empty_auth);
        let plain = unwrap_rsa(&file, &parent_key);
        // size 2 + type 2 + auth 2 + seed 2 + scalar 2 + 32.
        assert_eq!(plain.len(), 42);
        assert_eq!(&plain[..10], &[0, 40, 0, 0x23, 0, 0, 0, 0, 0, 32]);
        let public = file.public_area().unwrap();
        assert_eq!(
            public.attributes,
            TPMA_OBJECT_USER_WITH_AUTH | TPMA_OBJECT_SIGN | TPMA_OBJECT_NO_DA
        );
        assert_eq!(public.key_type_name(), "ecc-p256");
    }

    #[test]
    fn ecc_parent_seed_agrees_with_parent_side_ecdh() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let SoftwareKey::EcP256(parent_secret) = data_key("p256-sec1.pem") else {
            panic!()
        };
        let point = parent_secret.public_key().to_encoded_point(false);
        let parent = TpmPublic::standard_ecc_srk_with_point(point.x().unwrap(), point.y().unwrap());
        let (seed, encrypted) = make_seed(&parent).unwrap();
        // The parent side: Z = x(d_parent * Q_ephemeral).
        let mut r = Reader::new(&encrypted);
        let ex = r.read_tpm2b("x").unwrap().to_vec();
        let ey = r.read_tpm2b("y").unwrap().to_vec();
        r.finish("point").unwrap();
        let eph = TpmPublic::standard_ecc_srk_with_point(&ex, &ey);
        let eph_pub = {
            use p256::pkcs8::DecodePublicKey;
            p256::PublicKey::from_public_key_der(&eph.to_spki_der().unwrap()).unwrap()
        };
        let shared =
            p256::ecdh::diffie_hellman(parent_secret.to_nonzero_scalar(), eph_pub.as_affine());
        let want = kdfe(
            TPM_ALG_SHA256,
            shared.raw_secret_bytes(),
            "DUPLICATE",
            &ex,
            point.x().unwrap(),
            256,
        )
        .unwrap();
        assert_eq!(*seed, *want);
    }

    #[test]
    fn auth_too_long_and_bad_parents() {
        let (_, parent) = rsa_parent();
        let key = data_key("p256-sec1.pem");
        assert_eq!(
            wrap_for_parent(&key, &[1; 33], &parent, 1).unwrap_err(),
            DuplicateError::AuthTooLong { len: 33, max: 32 }
        );
        assert!(wrap_for_parent(&key, &[1; 32], &parent, 1).is_ok());
        let mut not_storage = parent.clone();
        not_storage.attributes &= !TPMA_OBJECT_RESTRICTED;
        assert!(matches!(
            wrap_for_parent(&key, b"", &not_storage, 1),
            Err(DuplicateError::UnsupportedParent(_))
        ));
        let mut no_sym = parent.clone();
        no_sym.symmetric = None;
        assert!(matches!(
            wrap_for_parent(&key, b"", &no_sym, 1),
            Err(DuplicateError::UnsupportedParent(_))
        ));
    }

    /// End to end against a real TPM: swtpm and tpm2-tools (installed by
    /// tests/install-deps.sh). Wraps RSA-2048 and P-256 keys, with and without a
    /// password, for an RSA and an ECC storage key, then `tpm2_import`, `tpm2_load`,
    /// `tpm2_sign` and checks the signature with `openssl` against `to_spki_pem()`.
    /// Also signs through the tpm2-openssl provider with a loadable key file written by
    /// keyfile.rs, which checks the emptyAuth encoding. Skipped when the tools are missing.
    mod swtpm {
        use super::*;
        use std::net::TcpListener;
        use std::path::{Path, PathBuf};
        use std::process::{Child, Command, Stdio};

        fn have(tool: &str) -> bool {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        }

        struct Tpm {
            child: Child,
            port: u16,
            dir: tempfile::TempDir,
        }

        impl Drop for Tpm {
            fn drop(&mut self) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }

        /// Two consecutive free ports: the swtpm TCTI expects the control port at port + 1.
        fn free_port_pair() -> (u16, u16) {
            for _ in 0..50 {
                let a = TcpListener::bind("127.0.0.1:0").unwrap();
                let port = a.local_addr().unwrap().port();
                if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                    return (port, port + 1);
                }
            }
            panic!("no two consecutive free ports");
        }

        impl Tpm {
            fn start() -> Tpm {
                let dir = tempfile::tempdir().unwrap();
                let state = dir.path().join("state");
                std::fs::create_dir(&state).unwrap();
                let (port, ctrl) = free_port_pair();
                let child = Command::new("swtpm")
                    .args(["socket", "--tpm2", "--server"])
                    .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                    .arg("--ctrl")
                    .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
                    .arg("--tpmstate")
                    .arg(format!("dir={}", state.display()))
                    .args(["--flags", "not-need-init,startup-clear"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let tpm = Tpm { child, port, dir };
                for _ in 0..100 {
                    if std::net::TcpStream::connect(("127.0.0.1", ctrl)).is_ok() {
                        return tpm;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                panic!("swtpm did not start on port {port}");
            }

            fn path(&self, name: &str) -> PathBuf {
                self.dir.path().join(name)
            }

            fn cmd(&self, program: &str, args: &[&str]) -> Command {
                let mut cmd = Command::new(program);
                cmd.args(args)
                    .current_dir(self.dir.path())
                    .env("TPM2TOOLS_TCTI", format!("swtpm:port={}", self.port))
                    .env("TPM2OPENSSL_TCTI", format!("swtpm:port={}", self.port));
                cmd
            }

            fn run(&self, program: &str, args: &[&str]) {
                let out = self.cmd(program, args).output().unwrap();
                assert!(
                    out.status.success(),
                    "{program} {args:?} failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if program.starts_with("tpm2_") && program != "tpm2_flushcontext" {
                    // No resource manager on the raw simulator socket: drop transients.
                    self.run("tpm2_flushcontext", &["-t"]);
                }
            }

            fn fails(&self, program: &str, args: &[&str]) -> bool {
                let failed = !self.cmd(program, args).output().unwrap().status.success();
                self.run("tpm2_flushcontext", &["-t"]);
                failed
            }

            fn storage_key(&self, alg: &str, handle: &str) -> TpmPublic {
                let attrs =
                    "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt";
                let ctx = format!("{handle}.ctx");
                let public = format!("{handle}.pub");
                self.run(
                    "tpm2_createprimary",
                    &[
                        "-C", "o", "-g", "sha256", "-G", alg, "-a", attrs, "-c", &ctx,
                    ],
                );
                self.run("tpm2_evictcontrol", &["-c", &ctx, handle]);
                self.run("tpm2_readpublic", &["-c", handle, "-o", &public]);
                let parent =
                    TpmPublic::from_tpm2b(&std::fs::read(self.path(&public)).unwrap()).unwrap();
                assert_eq!(parent.attributes, TpmPublic::STORAGE_KEY_ATTRIBUTES);
                parent
            }
        }

        fn write(path: &Path, data: &[u8]) {
            std::fs::write(path, data).unwrap();
        }

        #[test]
        fn imports_loads_and_signs_on_swtpm() {
            for tool in ["swtpm", "tpm2_import", "tpm2_sign", "openssl"] {
                assert!(have(tool), "{tool} is missing: run tests/install-deps.sh");
            }
            let tpm = Tpm::start();
            tpm.run(
                "tpm2_dictionarylockout",
                &["-s", "-n", "1000", "-t", "1", "-l", "1"],
            );
            let rsa_parent = tpm.storage_key("rsa2048:aes128cfb", "0x81000001");
            // The standard template rebuilt from the SRK's modulus is the SRK itself.
            let KeyParams::Rsa { modulus, .. } = &rsa_parent.key else {
                panic!()
            };
            assert_eq!(TpmPublic::standard_srk_with_modulus(modulus), rsa_parent);
            let ecc_parent = tpm.storage_key("ecc256:aes128cfb", "0x81000002");
            let provider = tpm
                .cmd("openssl", &["list", "-providers", "-provider", "tpm2"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            write(&tpm.path("msg"), b"signed by an imported key\n");

            let mut n = 0;
            for (key_file, scheme) in [("rsa2048-pkcs1.pem", "rsassa"), ("p256-sec1.pem", "ecdsa")]
            {
                let key = data_key(key_file);
                for (parent, handle) in [(&rsa_parent, "0x81000001"), (&ecc_parent, "0x81000002")] {
                    for auth in ["", "key password"] {
                        n += 1;
                        let file = wrap_for_parent(&key, auth.as_bytes(), parent, 0).unwrap();
                        // Through the PEM file, as a client would hand it over.
                        let file = TpmKeyFile::parse(file.to_pem().as_bytes()).unwrap();
                        let p = |s: &str| format!("k{n}.{s}");
                        write(&tpm.path(&p("pub")), &file.public);
                        write(&tpm.path(&p("dup")), &file.private);
                        write(&tpm.path(&p("seed")), file.secret.as_deref().unwrap());
                        let public = file.public_area().unwrap();
                        write(
                            &tpm.path(&p("spki")),
                            public.to_spki_pem().unwrap().as_bytes(),
                        );
                        tpm.run(
                            "tpm2_import",
                            &[
                                "-C",
                                handle,
                                "-u",
                                &p("pub"),
                                "-i",
                                &p("dup"),
                                "-s",
                                &p("seed"),
                                "-r",
                                &p("priv"),
                            ],
                        );
                        tpm.run(
                            "tpm2_load",
                            &[
                                "-C",
                                handle,
                                "-u",
                                &p("pub"),
                                "-r",
                                &p("priv"),
                                "-c",
                                &p("ctx"),
                                "-n",
                                &p("name"),
                            ],
                        );
                        // The TPM computes the same name.
                        assert_eq!(
                            std::fs::read(tpm.path(&p("name"))).unwrap(),
                            public.name().unwrap()
                        );
                        // The raw socket has no resource manager and run() flushes
                        // transients after each tool, so load and sign in one shell.
                        let sign = format!(
                            "tpm2_load -C {handle} -u {pub_} -r {priv_} -c {ctx} >/dev/null && tpm2_sign -c {ctx} {auth_arg} -g sha256 -s {scheme} -f plain -o {sig} msg",
                            pub_ = p("pub"),
                            priv_ = p("priv"),
                            ctx = p("ctx"),
                            auth_arg = if auth.is_empty() { String::new() } else { format!("-p '{auth}'") },
                            sig = p("sig"),
                        );
                        tpm.run("sh", &["-c", &sign]);
                        tpm.run("tpm2_flushcontext", &["-t"]);
                        tpm.run(
                            "openssl",
                            &[
                                "dgst",
                                "-sha256",
                                "-verify",
                                &p("spki"),
                                "-signature",
                                &p("sig"),
                                "msg",
                            ],
                        );
                        if !auth.is_empty() {
                            let wrong = sign.replace(&format!("-p '{auth}'"), "-p wrong");
                            assert!(tpm.fails("sh", &["-c", &wrong]), "wrong password accepted");
                        }
                        if provider {
                            let loadable = TpmKeyFile {
                                kind: KeyFileKind::Loadable,
                                empty_auth: auth.is_empty(),
                                parent: u32::from_str_radix(&handle[2..], 16).unwrap(),
                                public: file.public.clone(),
                                private: std::fs::read(tpm.path(&p("priv"))).unwrap(),
                                secret: None,
                                policy: Vec::new(),
                                auth_policies: Vec::new(),
                                description: None,
                            };
                            write(&tpm.path(&p("tss2")), loadable.to_pem().as_bytes());
                            let pass = format!("pass:{auth}");
                            tpm.run(
                                "openssl",
                                &[
                                    "dgst",
                                    "-sha256",
                                    "-provider",
                                    "tpm2",
                                    "-provider",
                                    "default",
                                    "-propquery",
                                    "?provider=tpm2",
                                    "-passin",
                                    &pass,
                                    "-sign",
                                    &p("tss2"),
                                    "-out",
                                    &p("psig"),
                                    "msg",
                                ],
                            );
                            tpm.run(
                                "openssl",
                                &[
                                    "dgst",
                                    "-sha256",
                                    "-verify",
                                    &p("spki"),
                                    "-signature",
                                    &p("psig"),
                                    "msg",
                                ],
                            );
                        }
                    }
                }
            }
            assert_eq!(n, 8);
            eprintln!("checked {n} wrapped keys on swtpm (tpm2-openssl provider too: {provider})");
        }
    }
}
