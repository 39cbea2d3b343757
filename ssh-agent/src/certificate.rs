//! OpenSSH certificates (PROTOCOL.certkeys), read by the agent itself: ssh-key 0.6
//! refuses the certificates ssh-keygen makes by default, whose validity ends "forever"
//! (2^64-1 seconds, beyond what it can represent). Only what the agent needs is kept: the
//! certified key, host or user, principals, validity and the CA, whose signature is
//! checked with ssh-key's verifiers.

use ssh_agent_lib::ssh_encoding::base64::{Base64, Encoding};
use ssh_agent_lib::ssh_encoding::{Decode, Encode, Reader};
use ssh_key::public::KeyData;
use ssh_key::Signature;

pub const CERT_SUFFIX: &str = "-cert-v01@openssh.com";

/// Certificate type 2 (SSH2_CERT_TYPE_HOST).
const HOST_CERT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    pub blob: Vec<u8>,
    /// "ssh-ed25519-cert-v01@openssh.com", ...
    pub algorithm: String,
    /// The certified key.
    pub key: KeyData,
    pub host: bool,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    /// The certificate authority's key.
    pub ca: KeyData,
    /// The CA signs the blob up to here.
    signed_len: usize,
    signature: Vec<u8>,
}

/// How many length-prefixed fields a certified key of this plain type has.
fn key_fields(plain: &str) -> Option<usize> {
    match plain {
        "ssh-rsa" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
            Some(2)
        }
        "ssh-dss" => Some(4),
        "ssh-ed25519" => Some(1),
        _ => None,
    }
}

/// The plain key type of a certificate type ("ssh-rsa" for "ssh-rsa-cert-v01@...").
pub fn plain_type(algorithm: &str) -> Option<&str> {
    algorithm.strip_suffix(CERT_SUFFIX)
}

impl Cert {
    pub fn parse(blob: Vec<u8>) -> Result<Cert, String> {
        let bad = |what: &str| format!("malformed certificate ({what})");
        let mut reader = blob.as_slice();
        let r = &mut reader;
        let algorithm = String::decode(r).map_err(|_| bad("type"))?;
        let plain = plain_type(&algorithm)
            .ok_or_else(|| bad("type"))?
            .to_string();
        let fields = key_fields(&plain)
            .ok_or_else(|| format!("certificates of {plain} keys are not supported"))?;
        let _nonce = Vec::<u8>::decode(r).map_err(|_| bad("nonce"))?;
        // The certified key: the same fields as its plain blob, after the plain type.
        let mut key_blob = Vec::new();
        plain.encode(&mut key_blob).map_err(|_| bad("key"))?;
        for _ in 0..fields {
            let field = Vec::<u8>::decode(r).map_err(|_| bad("key"))?;
            field.encode(&mut key_blob).map_err(|_| bad("key"))?;
        }
        let key =
            KeyData::decode(&mut key_blob.as_slice()).map_err(|e| format!("certified key: {e}"))?;
        let _serial = u64::decode(r).map_err(|_| bad("serial"))?;
        let kind = u32::decode(r).map_err(|_| bad("type"))?;
        let _key_id = String::decode(r).map_err(|_| bad("key id"))?;
        let packed = Vec::<u8>::decode(r).map_err(|_| bad("principals"))?;
        let mut principals = Vec::new();
        let mut packed_reader = packed.as_slice();
        while !packed_reader.is_finished() {
            principals.push(String::decode(&mut packed_reader).map_err(|_| bad("principals"))?);
        }
        let valid_after = u64::decode(r).map_err(|_| bad("validity"))?;
        let valid_before = u64::decode(r).map_err(|_| bad("validity"))?;
        for what in ["critical options", "extensions", "reserved"] {
            Vec::<u8>::decode(r).map_err(|_| bad(what))?;
        }
        let ca_blob = Vec::<u8>::decode(r).map_err(|_| bad("CA key"))?;
        let ca = KeyData::decode(&mut ca_blob.as_slice())
            .map_err(|e| format!("certificate's CA key: {e}"))?;
        let signed_len = blob.len() - reader.len();
        let signature = Vec::<u8>::decode(&mut reader).map_err(|_| bad("signature"))?;
        if !reader.is_finished() {
            return Err(bad("trailing bytes"));
        }
        Ok(Cert {
            algorithm,
            key,
            host: kind == HOST_CERT,
            principals,
            valid_after,
            valid_before,
            ca,
            signed_len,
            signature,
            blob,
        })
    }

    /// A certificate in OpenSSH's one-line form (`TYPE BASE64 [COMMENT]`, as in
    /// `KEY-cert.pub`).
    pub fn from_openssh(text: &str) -> Result<Cert, String> {
        let mut parts = text.split_whitespace();
        let (Some(kind), Some(base64)) = (parts.next(), parts.next()) else {
            return Err("not an OpenSSH certificate line".into());
        };
        let blob = Base64::decode_vec(base64).map_err(|e| format!("certificate: {e}"))?;
        let cert = Cert::parse(blob)?;
        if cert.algorithm != kind {
            return Err(format!(
                "the line says {kind}, the certificate is {}",
                cert.algorithm
            ));
        }
        Ok(cert)
    }

    /// Whether the CA's signature over the certificate is good.
    pub fn signature_valid(&self) -> bool {
        let Ok(signature) = Signature::try_from(self.signature.as_slice()) else {
            return false;
        };
        signature::Verifier::verify(&self.ca, &self.blob[..self.signed_len], &signature).is_ok()
    }

    pub fn valid_now(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.valid_after <= now && now < self.valid_before
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A host certificate for "host_d" by ssh-keygen, valid forever, with an Ed25519 CA.
    fn certificate() -> (String, String) {
        let dir = std::env::temp_dir().join(format!("tpmd-cert-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keygen = |args: &[&str]| {
            let out = std::process::Command::new("ssh-keygen")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let (ca, host) = (dir.join("ca"), dir.join("host"));
        for key in [&ca, &host] {
            keygen(&["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]);
        }
        keygen(&[
            "-q",
            "-s",
            ca.to_str().unwrap(),
            "-I",
            "id",
            "-n",
            "host_d",
            "-h",
            &format!("{}.pub", host.display()),
        ]);
        let cert = std::fs::read_to_string(format!("{}-cert.pub", host.display())).unwrap();
        let ca_pub = std::fs::read_to_string(format!("{}.pub", ca.display())).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (cert, ca_pub)
    }

    #[test]
    fn reads_a_forever_host_certificate_and_checks_its_signature() {
        let (text, ca) = certificate();
        let cert = Cert::from_openssh(&text).unwrap();
        assert!(cert.host);
        assert_eq!(cert.principals, vec!["host_d".to_string()]);
        assert_eq!(cert.valid_before, u64::MAX);
        assert!(cert.valid_now());
        assert!(cert.signature_valid());
        let ca = ssh_key::PublicKey::from_openssh(ca.trim()).unwrap();
        assert_eq!(&cert.ca, ca.key_data());
        let mut tampered = cert.blob.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 1;
        assert!(Cert::parse(tampered)
            .map(|c| !c.signature_valid())
            .unwrap_or(true));
    }
}
