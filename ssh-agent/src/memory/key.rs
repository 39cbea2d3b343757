//! One key held in memory: its OpenSSH private encoding in locked pages, decoded only
//! for the time of one signature (ssh-key's private key types wipe themselves when
//! dropped). Signatures as ssh-agent makes them: Ed25519, ECDSA P-256/384/521, DSA, and
//! RSA with SHA-1, SHA-256 or SHA-512 as the request's flags ask.

use ssh_agent_lib::ssh_encoding::{Decode, Encode};
use ssh_key::private::KeypairData;
use ssh_key::public::KeyData;
use zeroize::Zeroizing;

use super::locked::LockedBytes;
use crate::error::AgentError;
use crate::sign::{self, Signed};

pub struct MemoryKey {
    pub public: KeyData,
    secret: LockedBytes,
}

impl std::fmt::Debug for MemoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryKey({})", self.public.algorithm())
    }
}

fn bad(e: impl std::fmt::Display) -> AgentError {
    AgentError::BadRequest(format!("in-memory key: {e}"))
}

impl MemoryKey {
    pub fn new(keypair: &KeypairData) -> Result<MemoryKey, AgentError> {
        let public = KeyData::try_from(keypair).map_err(bad)?;
        let mut encoded = Zeroizing::new(Vec::new());
        keypair.encode(&mut *encoded).map_err(bad)?;
        let key = MemoryKey {
            public,
            secret: LockedBytes::new(&encoded),
        };
        // Fail now, not at the first signature, if this key cannot sign or its halves do
        // not match (ssh-key cannot verify RSA below 2048 bits; those are checked when
        // their private parts are assembled).
        let check = key.sign(b"check", 0)?;
        if let Signed::Ssh(signature) = &check {
            if !matches!(key.public, KeyData::Rsa(_))
                && signature::Verifier::verify(&key.public, b"check", signature).is_err()
            {
                return Err(bad("the private key does not match its public key"));
            }
        }
        Ok(key)
    }

    fn keypair(&self) -> Result<KeypairData, AgentError> {
        KeypairData::decode(&mut self.secret.as_slice()).map_err(bad)
    }

    pub fn sign(&self, data: &[u8], flags: u32) -> Result<Signed, AgentError> {
        let keypair = self.keypair()?;
        if let KeypairData::Rsa(pair) = &keypair {
            return sign_rsa(pair, data, flags);
        }
        let signature = signature::Signer::<ssh_key::Signature>::try_sign(&keypair, data)
            .map_err(|e| bad(format!("signing failed: {e}")))?;
        Ok(Signed::Ssh(signature))
    }
}

fn sign_rsa(
    pair: &ssh_key::private::RsaKeypair,
    data: &[u8],
    flags: u32,
) -> Result<Signed, AgentError> {
    use rsa::BigUint;
    let num = |m: &ssh_key::Mpint| BigUint::try_from(m).map_err(bad);
    let private = rsa::RsaPrivateKey::from_components(
        num(&pair.public.n)?,
        num(&pair.public.e)?,
        num(&pair.private.d)?,
        vec![num(&pair.private.p)?, num(&pair.private.q)?],
    )
    .map_err(bad)?;
    let plan = sign::plan(&KeyData::Rsa(pair.public.clone()), data, flags)?;
    let padding = sign::pkcs1v15(&plan).ok_or_else(|| bad("no RSA padding for this hash"))?;
    let signature = private
        .sign_with_rng(&mut rand::thread_rng(), padding, &plan.digest)
        .map_err(bad)?;
    sign::finish(&plan, signature)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use signature::Verifier;
    use ssh_key::{Algorithm, HashAlg, PrivateKey};

    fn verify(key: &MemoryKey, signed: Signed) {
        let Signed::Ssh(signature) = signed else {
            panic!("not an ssh-key signature")
        };
        key.public.verify(b"message", &signature).unwrap();
    }

    #[test]
    fn signs_with_every_kind_a_tpm_cannot_hold() {
        let mut rng = rand::thread_rng();
        for algorithm in [
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP521,
            },
            Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP256,
            },
        ] {
            let private = PrivateKey::random(&mut rng, algorithm.clone()).unwrap();
            let key = MemoryKey::new(private.key_data()).unwrap();
            assert_eq!(&key.public, private.public_key().key_data());
            verify(&key, key.sign(b"message", 0).unwrap());
        }
    }

    #[test]
    fn rsa_signs_with_the_hash_the_flags_ask_for() {
        use sha2::{Digest, Sha256, Sha512};
        // 1024 bits: a size the TPM path refuses, and ssh-key's own verifier too.
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let public = private.to_public_key();
        let pair = ssh_key::private::RsaKeypair::try_from(private).unwrap();
        let key = MemoryKey::new(&KeypairData::Rsa(pair)).unwrap();
        for (flags, hash, scheme, digest) in [
            (
                2,
                HashAlg::Sha256,
                rsa::Pkcs1v15Sign::new::<Sha256>(),
                Sha256::digest(b"message").to_vec(),
            ),
            (
                4,
                HashAlg::Sha512,
                rsa::Pkcs1v15Sign::new::<Sha512>(),
                Sha512::digest(b"message").to_vec(),
            ),
        ] {
            let Signed::Ssh(signature) = key.sign(b"message", flags).unwrap() else {
                panic!("not an ssh-key signature")
            };
            assert_eq!(signature.algorithm(), Algorithm::Rsa { hash: Some(hash) });
            public
                .verify(scheme, &digest, signature.as_bytes())
                .unwrap();
        }
        assert!(matches!(
            key.sign(b"message", 0).unwrap(),
            Signed::Raw { .. }
        ));
    }
}
