//! Key files with policies for the end-to-end tests, built with tpmd_api's policy
//! functions as tpm-keyctl builds them, and the owner of signed policies (a software
//! P-256 key).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use p256::ecdsa::signature::hazmat::PrehashSigner;
use sha2::{Digest, Sha256};
use tpmd_api::dbus::GenerateOptions;
use tpmd_api::keyfile::{AuthPolicy, PolicyStatement, TpmKeyFile};
use tpmd_api::marshal::{put_tpm2b, put_u16, TPM_ALG_ECDSA, TPM_ALG_SHA256};
use tpmd_api::policy::{
    authorize_statement, marshal_selection, parse_selection, pcr_statement, pcr_values_digest,
    policy_digest, CC_POLICY_PCR,
};
use tpmd_api::{Daemon1Proxy, SoftwareKey, TpmPublic};
use tpmd_tests::TestEnv;
use tpmd_tpm2::tpm::Tpm;
use tpmd_tpm2::wire::{ops, AuthCommand};

pub const PCR: u8 = 16;

/// Extends PCR 16 on the simulator as another TPM user would, between tpmd's commands.
pub fn extend_pcr(env: &TestEnv, data: &[u8]) {
    let mut tpm = Tpm::open(&env.sim.transport(), None).unwrap();
    let digest = Sha256::digest(data);
    tpm.execute(
        &ops::pcr_extend(u32::from(PCR), TPM_ALG_SHA256, &digest),
        &[AuthCommand::password(b"")],
    )
    .unwrap();
}

/// PolicyPCR over PCR 16 holding `value`.
pub fn pcr_policy(value: &[u8]) -> PolicyStatement {
    let banks = parse_selection("sha256:16").unwrap();
    let digest = pcr_values_digest(TPM_ALG_SHA256, &[value.to_vec()]).unwrap();
    pcr_statement(&banks, &digest)
}

/// The same statement as openssl_tpm2_engine writes it: the selection, then the digest
/// without its size (the order the policy hash takes them).
pub fn engine_layout(value: &[u8]) -> PolicyStatement {
    let banks = parse_selection("sha256:16").unwrap();
    let mut body = marshal_selection(&banks);
    body.extend_from_slice(&pcr_values_digest(TPM_ALG_SHA256, &[value.to_vec()]).unwrap());
    PolicyStatement {
        command_code: CC_POLICY_PCR,
        command_policy: body,
    }
}

/// A new P-256 key whose authPolicy is `statements`' digest, with the statements (and
/// `description`) written into the file tpmd returns, as tpm-keyctl does.
pub async fn policy_key(
    proxy: &Daemon1Proxy<'_>,
    auth: &[u8],
    statements: Vec<PolicyStatement>,
    description: Option<String>,
) -> Vec<u8> {
    let written = statements.clone();
    policy_key_written_as(proxy, auth, statements, written, description).await
}

/// [`policy_key`] for `statements`, with `written` in the file (the same policy in
/// another layout).
pub async fn policy_key_written_as(
    proxy: &Daemon1Proxy<'_>,
    auth: &[u8],
    statements: Vec<PolicyStatement>,
    written: Vec<PolicyStatement>,
    description: Option<String>,
) -> Vec<u8> {
    policy_key_of_type(proxy, "ecc-p256", auth, statements, written, description).await
}

/// [`policy_key_written_as`] for a key of `key_type`.
pub async fn policy_key_of_type(
    proxy: &Daemon1Proxy<'_>,
    key_type: &str,
    auth: &[u8],
    statements: Vec<PolicyStatement>,
    written: Vec<PolicyStatement>,
    description: Option<String>,
) -> Vec<u8> {
    let options = GenerateOptions {
        policy_digest: Some(policy_digest(TPM_ALG_SHA256, &statements).unwrap()),
        ..GenerateOptions::default()
    };
    let pem = proxy.generate(key_type, auth, options).await.unwrap();
    let mut file = TpmKeyFile::parse(&pem).unwrap();
    let public = file.public_area().unwrap();
    assert!(!public.auth_policy.is_empty());
    file.policy = written;
    file.description = description;
    file.to_pem().into_bytes()
}

/// The owner of signed policies: a software P-256 key.
pub struct Owner {
    pub key: p256::SecretKey,
    pub public: TpmPublic,
}

impl Owner {
    pub fn new() -> Owner {
        let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let public = TpmPublic::for_software_key(&SoftwareKey::EcP256(key.clone()), false);
        Owner { key, public }
    }

    /// A signed policy approving PCR 16 at `value` for keys naming this owner and
    /// `policy_ref`: what `tpm-keyctl policy sign` produces.
    pub fn sign(&self, name: &str, value: &[u8], policy_ref: &[u8]) -> AuthPolicy {
        let statements = vec![pcr_policy(value)];
        let approved = policy_digest(TPM_ALG_SHA256, &statements).unwrap();
        let a_hash = Sha256::new()
            .chain_update(&approved)
            .chain_update(policy_ref)
            .finalize();
        let signing = p256::ecdsa::SigningKey::from(&self.key);
        let signature: p256::ecdsa::Signature = signing.sign_prehash(&a_hash).unwrap();
        let (r, s) = signature.split_bytes();
        let mut tpmt = Vec::new();
        put_u16(&mut tpmt, TPM_ALG_ECDSA);
        put_u16(&mut tpmt, TPM_ALG_SHA256);
        put_tpm2b(&mut tpmt, &r);
        put_tpm2b(&mut tpmt, &s);
        let mut statements = statements;
        statements.push(authorize_statement(&self.public, policy_ref, &tpmt));
        AuthPolicy {
            name: Some(name.to_string()),
            statements,
        }
    }
}
