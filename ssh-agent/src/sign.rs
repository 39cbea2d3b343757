//! What a sign request asks of the TPM: the digest the agent computes (sha1/sha256/
//! sha512 by the RSA flags, sha256/sha384 by the ECDSA curve), tpmd's scheme name, and
//! the conversion of tpmd's answer into an SSH signature.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use ssh_agent_lib::ssh_encoding::Encode;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, Mpint};
use tpmd_api::dbus::scheme;

use crate::error::AgentError;

/// SSH_AGENT_RSA_SHA2_256 and SSH_AGENT_RSA_SHA2_512 (draft-miller-ssh-agent).
const RSA_SHA2_256: u32 = 0x02;
const RSA_SHA2_512: u32 = 0x04;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub scheme: &'static str,
    pub hash: &'static str,
    pub digest: Vec<u8>,
    /// The SSH signature algorithm name ("rsa-sha2-256", "ecdsa-sha2-nistp256", ...).
    pub algorithm: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa(Option<HashAlg>),
    Ecdsa(EcdsaCurve),
}

/// Works out how to sign `data` with `key` for the request `flags`.
pub fn plan(key: &KeyData, data: &[u8], flags: u32) -> Result<Plan, AgentError> {
    match key {
        KeyData::Rsa(_) => {
            let (hash, digest, algorithm, alg) = if flags & RSA_SHA2_512 != 0 {
                let d = Sha512::digest(data).to_vec();
                ("sha512", d, "rsa-sha2-512", Some(HashAlg::Sha512))
            } else if flags & RSA_SHA2_256 != 0 {
                let d = Sha256::digest(data).to_vec();
                ("sha256", d, "rsa-sha2-256", Some(HashAlg::Sha256))
            } else {
                let d = Sha1::digest(data).to_vec();
                ("sha1", d, "ssh-rsa", None)
            };
            Ok(Plan {
                scheme: scheme::RSA_PKCS1,
                hash,
                digest,
                algorithm,
                kind: Kind::Rsa(alg),
            })
        }
        KeyData::Ecdsa(public) => {
            let curve = public.curve();
            let (hash, digest, algorithm) = match curve {
                EcdsaCurve::NistP256 => (
                    "sha256",
                    Sha256::digest(data).to_vec(),
                    "ecdsa-sha2-nistp256",
                ),
                EcdsaCurve::NistP384 => (
                    "sha384",
                    Sha384::digest(data).to_vec(),
                    "ecdsa-sha2-nistp384",
                ),
                EcdsaCurve::NistP521 => (
                    "sha512",
                    Sha512::digest(data).to_vec(),
                    "ecdsa-sha2-nistp521",
                ),
            };
            Ok(Plan {
                scheme: scheme::ECDSA,
                hash,
                digest,
                algorithm,
                kind: Kind::Ecdsa(curve),
            })
        }
        other => Err(AgentError::Unsupported(format!(
            "{} keys are not TPM keys",
            other.algorithm()
        ))),
    }
}

/// The signature algorithm a request asks of `key`: the RSA flags choose among
/// rsa-sha2-512, rsa-sha2-256 and ssh-rsa; other keys have one.
pub fn algorithm_name(key: &KeyData, flags: u32) -> String {
    match key {
        KeyData::Rsa(_) if flags & RSA_SHA2_512 != 0 => "rsa-sha2-512".into(),
        KeyData::Rsa(_) if flags & RSA_SHA2_256 != 0 => "rsa-sha2-256".into(),
        other => other.algorithm().as_str().to_string(),
    }
}

/// RSA PKCS#1 v1.5 for the plan's hash: its DigestInfo prefix goes before the digest.
pub fn pkcs1v15(plan: &Plan) -> Option<rsa::Pkcs1v15Sign> {
    match plan.kind {
        Kind::Rsa(None) => Some(rsa::Pkcs1v15Sign::new::<Sha1>()),
        Kind::Rsa(Some(HashAlg::Sha256)) => Some(rsa::Pkcs1v15Sign::new::<Sha256>()),
        Kind::Rsa(Some(HashAlg::Sha512)) => Some(rsa::Pkcs1v15Sign::new::<Sha512>()),
        _ => None,
    }
}

/// What PKCS#1 v1.5 signs for an RSA plan: DigestInfo (prefix and digest).
pub fn digest_info(plan: &Plan) -> Option<Vec<u8>> {
    let padding = pkcs1v15(plan)?;
    let mut out = padding.prefix.to_vec();
    out.extend_from_slice(&plan.digest);
    Some(out)
}

/// A signature ready for the agent reply. ssh-key 0.6 cannot build an `ssh-rsa`
/// (SHA-1) signature, so that one is kept as its algorithm name and blob.
#[derive(Debug, Clone)]
pub enum Signed {
    Ssh(ssh_key::Signature),
    Raw {
        algorithm: String,
        blob: Vec<u8>,
    },
    /// An encoded SSH signature (from the PKCS#11 helper).
    Encoded(Vec<u8>),
}

impl Signed {
    /// The SSH signature blob of the agent's reply.
    pub fn to_blob(&self) -> Option<Vec<u8>> {
        match self {
            Signed::Ssh(signature) => {
                let mut out = Vec::new();
                signature.encode(&mut out).ok()?;
                Some(out)
            }
            Signed::Raw { algorithm, blob } => crate::wire::signature_blob(algorithm, blob),
            Signed::Encoded(blob) => Some(blob.clone()),
        }
    }
}

/// Turns tpmd's answer (RSA: the signature; ECDSA: r || s) into the SSH signature.
pub fn finish(plan: &Plan, tpm_signature: Vec<u8>) -> Result<Signed, AgentError> {
    let bad = |e: &dyn std::fmt::Display| {
        AgentError::BadRequest(format!("tpmd returned an unusable signature: {e}"))
    };
    match plan.kind {
        Kind::Rsa(None) => Ok(Signed::Raw {
            algorithm: plan.algorithm.to_string(),
            blob: tpm_signature,
        }),
        Kind::Rsa(hash) => ssh_key::Signature::new(Algorithm::Rsa { hash }, tpm_signature)
            .map(Signed::Ssh)
            .map_err(|e| bad(&e)),
        Kind::Ecdsa(curve) => {
            if tpm_signature.is_empty() || !tpm_signature.len().is_multiple_of(2) {
                return Err(bad(&"odd length r || s"));
            }
            let (r, s) = tpm_signature.split_at(tpm_signature.len() / 2);
            let mut blob = Vec::new();
            for part in [r, s] {
                Mpint::from_positive_bytes(part)
                    .map_err(|e| bad(&e))?
                    .encode(&mut blob)
                    .map_err(|e| bad(&e))?;
            }
            ssh_key::Signature::new(Algorithm::Ecdsa { curve }, blob)
                .map(Signed::Ssh)
                .map_err(|e| bad(&e))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn p256_key() -> KeyData {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let verifying = p256::ecdsa::VerifyingKey::from(secret.public_key());
        KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::from(&verifying))
    }

    #[test]
    fn ecdsa_signature_is_two_mpints_and_verifies() {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let key = p256_key();
        let p = plan(&key, b"data", 0).unwrap();
        assert_eq!((p.scheme, p.hash), (scheme::ECDSA, "sha256"));
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let sig: p256::ecdsa::Signature = signing.sign_prehash(&p.digest).unwrap();
        let Signed::Ssh(ssh) = finish(&p, sig.to_bytes().to_vec()).unwrap() else {
            panic!("not an ssh signature")
        };
        use signature::Verifier;
        key.verify(b"data", &ssh).unwrap();
    }

    #[test]
    fn rsa_flags_choose_the_hash() {
        let n = ssh_key::Mpint::from_positive_bytes(&[0xc5; 256]).unwrap();
        let e = ssh_key::Mpint::from_positive_bytes(&[1, 0, 1]).unwrap();
        let key = KeyData::Rsa(ssh_key::public::RsaPublicKey { e, n });
        for (flags, hash, alg, len) in [
            (0, "sha1", "ssh-rsa", 20),
            (2, "sha256", "rsa-sha2-256", 32),
            (4, "sha512", "rsa-sha2-512", 64),
            (6, "sha512", "rsa-sha2-512", 64),
        ] {
            let p = plan(&key, b"x", flags).unwrap();
            assert_eq!((p.hash, p.algorithm, p.digest.len()), (hash, alg, len));
        }
    }
}
