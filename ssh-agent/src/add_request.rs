//! SSH_AGENTC_ADD_IDENTITY and ADD_ID_CONSTRAINED, read by the agent itself: a key, or a
//! certificate with the private half of its key, a comment, and constraints. Two things
//! ssh-agent-lib 0.5 (through ssh-key 0.6) gets wrong here are handled: certificates
//! valid "forever" (see `certificate.rs`), and ECDSA private scalars that OpenSSH sends
//! as minimal mpints, a byte or more shorter than the curve's size when their top bytes
//! are zero (half of all P-521 keys).

use ssh_agent_lib::proto::{KeyConstraint, PrivateKeyData};
use ssh_agent_lib::ssh_encoding::{Decode, Encode, Reader};
use ssh_key::private::{EcdsaKeypair, EcdsaPrivateKey, KeypairData};
use ssh_key::public::{EcdsaPublicKey, KeyData};
use ssh_key::Algorithm;
use zeroize::Zeroizing;

use crate::certificate::{plain_type, Cert};

pub struct AddRequest {
    pub keypair: KeypairData,
    pub cert: Option<Cert>,
    pub comment: String,
    pub constraints: Vec<KeyConstraint>,
}

fn bad(e: impl std::fmt::Display) -> String {
    format!("malformed add request: {e}")
}

/// An ECDSA private scalar of exactly `SIZE` bytes from an mpint of any length.
fn scalar<const SIZE: usize>(mpint: &[u8]) -> Result<EcdsaPrivateKey<SIZE>, String> {
    let digits = &mpint[mpint.iter().take_while(|b| **b == 0).count()..];
    if digits.len() > SIZE {
        return Err(bad("ECDSA private key too long for its curve"));
    }
    let mut fixed = Zeroizing::new(vec![0u8; SIZE]);
    fixed[SIZE - digits.len()..].copy_from_slice(digits);
    let mut encoded = Zeroizing::new(Vec::new());
    fixed.as_slice().encode(&mut *encoded).map_err(bad)?;
    EcdsaPrivateKey::<SIZE>::decode(&mut encoded.as_slice()).map_err(bad)
}

fn ecdsa_keypair(public: &EcdsaPublicKey, private: &[u8]) -> Result<EcdsaKeypair, String> {
    Ok(match public {
        EcdsaPublicKey::NistP256(point) => EcdsaKeypair::NistP256 {
            public: *point,
            private: scalar::<32>(private)?,
        },
        EcdsaPublicKey::NistP384(point) => EcdsaKeypair::NistP384 {
            public: *point,
            private: scalar::<48>(private)?,
        },
        EcdsaPublicKey::NistP521(point) => EcdsaKeypair::NistP521 {
            public: *point,
            private: scalar::<66>(private)?,
        },
    })
}

/// A plain ECDSA key: curve name, public point, private scalar.
fn plain_ecdsa(algorithm: &str, reader: &mut &[u8]) -> Result<KeypairData, String> {
    let curve = String::decode(reader).map_err(bad)?;
    let point = Vec::<u8>::decode(reader).map_err(bad)?;
    let private = Zeroizing::new(Vec::<u8>::decode(reader).map_err(bad)?);
    let mut public_blob = Vec::new();
    for part in [algorithm.as_bytes(), curve.as_bytes(), &point] {
        part.encode(&mut public_blob).map_err(bad)?;
    }
    let KeyData::Ecdsa(public) = KeyData::decode(&mut public_blob.as_slice()).map_err(bad)? else {
        return Err(bad("not an ECDSA key"));
    };
    Ok(KeypairData::Ecdsa(ecdsa_keypair(&public, &private)?))
}

/// The key pair a certificate's key and the private fields after it make together.
fn certified(cert: &Cert, reader: &mut &[u8]) -> Result<KeypairData, String> {
    let mismatch = || bad("the certificate does not match its private key");
    if let KeyData::Ecdsa(public) = &cert.key {
        let private = Zeroizing::new(Vec::<u8>::decode(reader).map_err(bad)?);
        return Ok(KeypairData::Ecdsa(ecdsa_keypair(public, &private)?));
    }
    let algorithm = cert.key.algorithm();
    let private = PrivateKeyData::decode_as(reader, algorithm).map_err(bad)?;
    Ok(match (&cert.key, private) {
        (KeyData::Rsa(public), PrivateKeyData::Rsa(private)) => {
            KeypairData::Rsa(ssh_key::private::RsaKeypair {
                public: public.clone(),
                private,
            })
        }
        (KeyData::Dsa(public), PrivateKeyData::Dsa(private)) => {
            KeypairData::Dsa(ssh_key::private::DsaKeypair {
                public: public.clone(),
                private,
            })
        }
        (KeyData::Ed25519(public), PrivateKeyData::Ed25519(pair)) if &pair.public == public => {
            KeypairData::Ed25519(pair)
        }
        _ => return Err(mismatch()),
    })
}

pub fn parse_add(frame: &[u8]) -> Result<AddRequest, String> {
    let Some((&kind, mut body)) = frame.split_first() else {
        return Err(bad("empty"));
    };
    let reader = &mut body;
    let algorithm = String::decode(reader).map_err(bad)?;
    let (keypair, cert) = if plain_type(&algorithm).is_some() {
        let cert = Cert::parse(Vec::<u8>::decode(reader).map_err(bad)?)?;
        (certified(&cert, reader)?, Some(cert))
    } else if algorithm.starts_with("ecdsa-sha2-") {
        (plain_ecdsa(&algorithm, reader)?, None)
    } else {
        let parsed =
            Algorithm::new(&algorithm).map_err(|_| format!("unknown key type {algorithm}"))?;
        (KeypairData::decode_as(reader, parsed).map_err(bad)?, None)
    };
    let comment = String::decode(reader).map_err(bad)?;
    let mut constraints = Vec::new();
    if kind == ADD_ID_CONSTRAINED {
        while !reader.is_finished() {
            constraints.push(KeyConstraint::decode(reader).map_err(bad)?);
        }
    } else if !reader.is_finished() {
        return Err(bad("trailing bytes"));
    }
    Ok(AddRequest {
        keypair,
        cert,
        comment,
        constraints,
    })
}

pub const ADD_IDENTITY: u8 = 17;
pub const ADD_ID_CONSTRAINED: u8 = 25;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_p521_scalar_one_byte_short_is_padded() {
        let private = ssh_key::PrivateKey::random(
            &mut rand::thread_rng(),
            Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP521,
            },
        )
        .unwrap();
        let KeypairData::Ecdsa(EcdsaKeypair::NistP521 { public, private: d }) = private.key_data()
        else {
            panic!("not P-521")
        };
        // OpenSSH's minimal mpint: no leading zero bytes.
        let bytes = d.as_slice();
        let minimal = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
        let mut frame = vec![ADD_IDENTITY];
        for part in [
            "ecdsa-sha2-nistp521".as_bytes(),
            b"nistp521",
            public.as_bytes(),
        ] {
            part.encode(&mut frame).unwrap();
        }
        // Force the short form the bug is about.
        let short = if minimal.len() == 66 {
            &minimal[1..]
        } else {
            minimal
        };
        short.encode(&mut frame).unwrap();
        "comment".encode(&mut frame).unwrap();
        let parsed = parse_add(&frame).unwrap();
        let KeypairData::Ecdsa(EcdsaKeypair::NistP521 { private: got, .. }) = &parsed.keypair
        else {
            panic!("not P-521")
        };
        assert_eq!(&got.as_slice()[66 - short.len()..], short);
        assert_eq!(parsed.comment, "comment");
    }
}
