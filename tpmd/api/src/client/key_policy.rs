//! The policy a client binds a key to when it makes or wraps one, and the signed
//! policies an owner issues for such keys. Two shapes, both with PolicyAuthValue after
//! them when the key has an auth value:
//!
//! - bound to PCR values: `PolicyPCR(selection, H(values))`; the values are recorded in
//!   the key file's description so that a failure can name the PCRs that changed;
//! - bound to an owner: `PolicyAuthorize(owner, policyRef)`; the owner signs, for each
//!   set of PCR values it trusts, `H(approvedPolicy || policyRef)` where approvedPolicy
//!   is the digest of `PolicyPCR(selection, H(values))`.
//!
//! All digests are SHA-256, the name algorithm of every key tpmd makes or wraps.

use p256::ecdsa::signature::hazmat::PrehashSigner;
use rsa::traits::PublicKeyParts;
use rsa::BigUint;
use thiserror::Error;

use crate::keyfile::{AuthPolicy, PolicyStatement, TpmKeyFile};
use crate::marshal::*;
use crate::policy::{
    auth_value_statement, authorization_digest, authorize_statement, pcr_statement,
    pcr_values_digest, policy_digest, PcrBank, PolicyError,
};
use crate::privkey::SoftwareKey;
use crate::public::{EccCurve, KeyParams, PublicError, TpmPublic};
use crate::recorded_pcrs::{with_recorded_values, RecordedBank};

/// Why a policy could not be built or signed. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyPolicyError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Public(#[from] PublicError),
    #[error("{0}")]
    Owner(String),
}

/// The hash of every policy digest and authorization tpmd's clients make.
pub const POLICY_HASH: u16 = TPM_ALG_SHA256;

/// What a new key's policy is, and what goes into its key file beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    /// The key file's `policy [1]`.
    pub statements: Vec<PolicyStatement>,
    /// Signed policies to put in the key file's `authPolicy [3]`.
    pub auth_policies: Vec<AuthPolicy>,
    /// PCR values to record in the description (empty: none known).
    pub recorded: Vec<RecordedBank>,
}

/// The selection the values are for, banks and PCRs in the order given.
pub fn selection_of(values: &[RecordedBank]) -> Vec<PcrBank> {
    values
        .iter()
        .map(|bank| PcrBank {
            hash_alg: bank.hash_alg,
            pcrs: bank.values.iter().map(|(pcr, _)| *pcr).collect(),
        })
        .collect()
}

/// Values in the order the TPM hashes them: banks as given, PCRs ascending.
fn in_tpm_order(values: &[RecordedBank]) -> Vec<RecordedBank> {
    values
        .iter()
        .map(|bank| {
            let mut bank = bank.clone();
            bank.values.sort_by_key(|(pcr, _)| *pcr);
            bank.values.dedup_by_key(|(pcr, _)| *pcr);
            bank
        })
        .collect()
}

/// `PolicyPCR(selection, H(values))` for these values.
pub fn pcr_policy_statement(values: &[RecordedBank]) -> Result<PolicyStatement, PolicyError> {
    let values = in_tpm_order(values);
    let flat: Vec<Vec<u8>> = values
        .iter()
        .flat_map(|bank| bank.values.iter().map(|(_, v)| v.clone()))
        .collect();
    let digest = pcr_values_digest(POLICY_HASH, &flat)?;
    Ok(pcr_statement(&selection_of(&values), &digest))
}

impl KeyPolicy {
    /// Bound to these PCR values (and the auth value, if the key has one).
    pub fn pcrs(values: &[RecordedBank], with_auth_value: bool) -> Result<KeyPolicy, PolicyError> {
        let mut statements = vec![pcr_policy_statement(values)?];
        if with_auth_value {
            statements.push(auth_value_statement());
        }
        Ok(KeyPolicy {
            statements,
            auth_policies: Vec::new(),
            recorded: in_tpm_order(values),
        })
    }

    /// Bound to policies `owner` signs with `policy_ref` (and the auth value, if any).
    pub fn signed(owner: &TpmPublic, policy_ref: &[u8], with_auth_value: bool) -> KeyPolicy {
        let mut statements = vec![authorize_statement(owner, policy_ref, &[])];
        if with_auth_value {
            statements.push(auth_value_statement());
        }
        KeyPolicy {
            statements,
            auth_policies: Vec::new(),
            recorded: Vec::new(),
        }
    }

    /// The authPolicy the key's public area must carry.
    pub fn digest(&self) -> Result<Vec<u8>, PolicyError> {
        policy_digest(POLICY_HASH, &self.statements)
    }

    /// Writes the policy fields into a key file (they are not integrity-protected, so
    /// they may be added to the file tpmd returns).
    pub fn write_into(&self, file: &mut TpmKeyFile) {
        file.policy = self.statements.clone();
        for policy in &self.auth_policies {
            if !file.auth_policies.contains(policy) {
                file.auth_policies.push(policy.clone());
            }
        }
        if !self.recorded.is_empty() {
            file.description = Some(with_recorded_values(
                file.description.as_deref(),
                &self.recorded,
            ));
        }
    }
}

/// The public area an owner's software key is named by in PolicyAuthorize: a plain
/// signing key (SHA-256 name, no scheme, so any signature scheme verifies). The same
/// function serves the public half (`--signed-policy owner.pub`) and the private key
/// (`policy sign --with owner.pem`), so both give the same name.
pub fn owner_public_from_spki_der(der: &[u8]) -> Result<TpmPublic, KeyPolicyError> {
    use rsa::pkcs8::DecodePublicKey;
    let attributes = TPMA_OBJECT_SIGN | TPMA_OBJECT_USER_WITH_AUTH;
    if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
        let exponent = if *k.e() == BigUint::from(65537u32) {
            0
        } else {
            crate::public::biguint_to_u32(k.e())
                .ok_or_else(|| KeyPolicyError::Owner("the owner's RSA exponent is too large for a TPM; use an owner key with exponent 65537".into()))?
        };
        return Ok(TpmPublic::plain(
            attributes,
            KeyParams::Rsa {
                bits: u16::try_from(k.size() * 8).unwrap_or(u16::MAX),
                exponent,
                modulus: k.n().to_bytes_be(),
            },
        ));
    }
    if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = k.to_encoded_point(false);
        return Ok(TpmPublic::plain(
            attributes,
            KeyParams::Ecc {
                curve: EccCurve::NistP256,
                x: point.x().map(|c| c.to_vec()).unwrap_or_default(),
                y: point.y().map(|c| c.to_vec()).unwrap_or_default(),
            },
        ));
    }
    Err(KeyPolicyError::Owner(
        "the owner key is neither RSA nor ECC P-256; use an RSA or P-256 owner key".into(),
    ))
}

/// [`owner_public_from_spki_der`] for the public half of a software private key.
pub fn owner_public_of(key: &SoftwareKey) -> Result<TpmPublic, KeyPolicyError> {
    let spki = TpmPublic::for_software_key(key, false).to_spki_der()?;
    owner_public_from_spki_der(&spki)
}

/// The approved policy for these PCR values and what the owner signs to authorize it
/// for keys naming `policy_ref`.
pub fn authorization_for(
    values: &[RecordedBank],
    policy_ref: &[u8],
) -> Result<(PolicyStatement, Vec<u8>), PolicyError> {
    let statement = pcr_policy_statement(values)?;
    let approved = policy_digest(POLICY_HASH, std::slice::from_ref(&statement))?;
    let a_hash = authorization_digest(POLICY_HASH, &approved, policy_ref)?;
    Ok((statement, a_hash))
}

/// The TPMT_SIGNATURE of a raw signature made over a SHA-256 digest by `owner`: an RSA
/// PKCS#1 v1.5 signature, or ECDSA's r || s (what tpmd's Sign returns).
pub fn tpmt_signature(owner: &TpmPublic, raw: &[u8]) -> Result<Vec<u8>, KeyPolicyError> {
    let mut out = Vec::with_capacity(raw.len() + 8);
    match &owner.key {
        KeyParams::Rsa { .. } => {
            put_u16(&mut out, TPM_ALG_RSASSA);
            put_u16(&mut out, POLICY_HASH);
            put_tpm2b(&mut out, raw);
        }
        KeyParams::Ecc { curve, .. } => {
            let half = curve.field_size();
            if raw.len() != 2 * half {
                return Err(KeyPolicyError::Owner(format!(
                    "an ECDSA signature of {} bytes for a curve of {half}-byte coordinates",
                    raw.len()
                )));
            }
            put_u16(&mut out, TPM_ALG_ECDSA);
            put_u16(&mut out, POLICY_HASH);
            put_tpm2b(&mut out, &raw[..half]);
            put_tpm2b(&mut out, &raw[half..]);
        }
    }
    Ok(out)
}

/// Signs an authorization digest with a software owner key: the raw signature
/// [`tpmt_signature`] takes.
pub fn sign_with_software_owner(
    key: &SoftwareKey,
    a_hash: &[u8],
) -> Result<Vec<u8>, KeyPolicyError> {
    let failed = |e: &dyn std::fmt::Display| KeyPolicyError::Owner(format!("signing failed: {e}"));
    match key {
        SoftwareKey::Rsa(k) => k
            .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), a_hash)
            .map_err(|e| failed(&e)),
        SoftwareKey::EcP256(k) => {
            let signer = p256::ecdsa::SigningKey::from(k);
            let signature: p256::ecdsa::Signature =
                signer.sign_prehash(a_hash).map_err(|e| failed(&e))?;
            Ok(signature.to_bytes().to_vec())
        }
        SoftwareKey::EcP384(_) => Err(KeyPolicyError::Owner(
            "the owner key is ECC P-384; use an RSA or P-256 owner key".into(),
        )),
    }
}

/// A signed policy for these PCR values: `PolicyPCR` then the owner's `PolicyAuthorize`
/// with its signature (a TPMT_SIGNATURE over [`authorization_for`]'s digest).
pub fn signed_pcr_policy(
    values: &[RecordedBank],
    owner: &TpmPublic,
    policy_ref: &[u8],
    signature: &[u8],
    name: Option<String>,
) -> Result<AuthPolicy, PolicyError> {
    Ok(AuthPolicy {
        name,
        statements: vec![
            pcr_policy_statement(values)?,
            authorize_statement(owner, policy_ref, signature),
        ],
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::auth_policy_file::{key_authorize, serves};
    use crate::keyfile::KeyFileKind;
    use crate::policy::{describe_selection, extend_statement, Authorize};
    use crate::privkey::read_private_key;
    use crate::recorded_pcrs::parse_recorded_values;

    fn data_key(name: &str) -> SoftwareKey {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        read_private_key(&std::fs::read(path).unwrap(), None)
            .unwrap()
            .key
    }

    fn values() -> Vec<RecordedBank> {
        vec![RecordedBank {
            hash_alg: TPM_ALG_SHA256,
            values: vec![(16, vec![0x16; 32]), (0, vec![0; 32])],
        }]
    }

    fn file() -> TpmKeyFile {
        TpmKeyFile {
            kind: KeyFileKind::Loadable,
            empty_auth: true,
            parent: 0x8100_0001,
            public: TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32]).to_tpm2b(),
            private: tpm2b(&[5; 50]),
            secret: None,
            policy: Vec::new(),
            auth_policies: Vec::new(),
            description: Some("work laptop".into()),
        }
    }

    #[test]
    fn pcr_policy_hashes_values_in_tpm_order_and_records_them() {
        let policy = KeyPolicy::pcrs(&values(), true).unwrap();
        assert_eq!(
            describe_selection(&selection_of(&policy.recorded)),
            "sha256:0,16"
        );
        let ordered: Vec<Vec<u8>> = vec![vec![0; 32], vec![0x16; 32]];
        let expected = pcr_statement(
            &selection_of(&policy.recorded),
            &pcr_values_digest(TPM_ALG_SHA256, &ordered).unwrap(),
        );
        assert_eq!(policy.statements, vec![expected, auth_value_statement()]);
        let mut key = file();
        policy.write_into(&mut key);
        assert_eq!(key.policy, policy.statements);
        let description = key.description.unwrap();
        assert!(description.starts_with("work laptop\ntpmd-pcr-values: sha256:0=00"));
        assert_eq!(
            parse_recorded_values(&description).unwrap().unwrap(),
            policy.recorded
        );
    }

    #[test]
    fn software_owners_sign_what_the_key_policy_names() {
        for name in ["rsa2048-pkcs1.pem", "p256-sec1.pem"] {
            let owner_key = data_key(name);
            let owner = owner_public_of(&owner_key).unwrap();
            let spki = owner.to_spki_der().unwrap();
            assert_eq!(owner_public_from_spki_der(&spki).unwrap(), owner);
            let key_policy = KeyPolicy::signed(&owner, b"laptop", false);
            let (_, a_hash) = authorization_for(&values(), b"laptop").unwrap();
            let raw = sign_with_software_owner(&owner_key, &a_hash).unwrap();
            let signature = tpmt_signature(&owner, &raw).unwrap();
            let signed = signed_pcr_policy(&values(), &owner, b"laptop", &signature, None).unwrap();
            let key = key_authorize(&key_policy.statements).unwrap();
            assert!(serves(&key, &signed));
            // The digest a session reaches through the signed branch is the key's.
            let branch = &signed.statements[1];
            let after = extend_statement(TPM_ALG_SHA256, &[0; 32], branch).unwrap();
            assert_eq!(after, key_policy.digest().unwrap());
            // The signature verifies in software over H(approved || ref).
            let authorize = Authorize::parse(&branch.command_policy).unwrap();
            assert!(authorize.has_signature());
            let public = owner.to_spki_der().unwrap();
            match &owner_key {
                SoftwareKey::Rsa(_) => {
                    use rsa::pkcs8::DecodePublicKey;
                    let k = rsa::RsaPublicKey::from_public_key_der(&public).unwrap();
                    k.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &a_hash, &raw)
                        .unwrap();
                }
                _ => {
                    use p256::ecdsa::signature::hazmat::PrehashVerifier;
                    use p256::pkcs8::DecodePublicKey;
                    let k = p256::ecdsa::VerifyingKey::from_public_key_der(&public).unwrap();
                    let sig = p256::ecdsa::Signature::from_slice(&raw).unwrap();
                    k.verify_prehash(&a_hash, &sig).unwrap();
                }
            }
        }
        assert!(owner_public_from_spki_der(b"junk").is_err());
    }
}
