//! TPM 2.0 policies in software: the digest a policy session reaches by running the
//! statements of a key file's `policy`, which is what a key's authPolicy must equal; the
//! statements tpmd writes (PolicyPCR, PolicyAuthValue, PolicyAuthorize, PolicyOR); PCR
//! selections; and the digest an owner signs to authorize a policy. TPM 2.0 Part 3,
//! "Enhanced Authorization (EA) Commands". No TPM needed.

use thiserror::Error;

use crate::keyfile::PolicyStatement;
use crate::marshal::*;
use crate::public::{hash_parts, PublicError, TpmPublic};

pub const CC_POLICY_SECRET: u32 = 0x151;
pub const CC_POLICY_AUTHORIZE: u32 = 0x16A;
pub const CC_POLICY_AUTH_VALUE: u32 = 0x16B;
pub const CC_POLICY_COMMAND_CODE: u32 = 0x16C;
pub const CC_POLICY_OR: u32 = 0x171;
pub const CC_POLICY_PCR: u32 = 0x17F;
pub const CC_POLICY_PASSWORD: u32 = 0x18C;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("the policy uses TPM command {0:#x}, which tpmd does not run; supported: PolicyPCR, PolicyAuthValue, PolicyPassword, PolicyCommandCode, PolicyOR, PolicyAuthorize, PolicySecret")]
    Unsupported(u32),
    #[error("a {what} statement in the policy is malformed: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error(transparent)]
    Public(#[from] PublicError),
}

fn malformed(what: &'static str) -> impl Fn(MarshalError) -> PolicyError {
    move |e| PolicyError::Malformed {
        what,
        detail: e.to_string(),
    }
}

/// One bank of a PCR selection: its hash algorithm and the PCR indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrBank {
    pub hash_alg: u16,
    pub pcrs: Vec<u8>,
}

/// TPML_PCR_SELECTION: each bank with a 3-byte bitmap (PCRs 0 to 23).
pub fn marshal_selection(banks: &[PcrBank]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + banks.len() * 6);
    put_u32(&mut out, banks.len() as u32);
    for bank in banks {
        put_u16(&mut out, bank.hash_alg);
        let mut bitmap = [0u8; 3];
        for pcr in &bank.pcrs {
            if let Some(byte) = bitmap.get_mut(usize::from(*pcr / 8)) {
                *byte |= 1 << (pcr % 8);
            }
        }
        out.push(bitmap.len() as u8);
        out.extend_from_slice(&bitmap);
    }
    out
}

/// Reads a TPML_PCR_SELECTION from `r`.
pub fn read_selection(r: &mut Reader<'_>) -> Result<Vec<PcrBank>, MarshalError> {
    let count = r.read_u32("TPML_PCR_SELECTION count")? as usize;
    let mut banks = Vec::with_capacity(count.min(8));
    for _ in 0..count {
        let hash_alg = r.read_u16("hash")?;
        let size = usize::from(r.read_u8("sizeofSelect")?);
        let bitmap = r.read_bytes(size, "pcrSelect")?;
        let pcrs = (0..size * 8)
            .filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
            .map(|i| i as u8)
            .collect();
        banks.push(PcrBank { hash_alg, pcrs });
    }
    Ok(banks)
}

/// `sha256:0,2,4,7` (several banks with `+`; ranges such as `0-7` too).
pub fn parse_selection(text: &str) -> Result<Vec<PcrBank>, String> {
    text.split('+')
        .map(|bank| {
            let (alg, list) = bank
                .split_once(':')
                .ok_or_else(|| format!("{bank:?}: write a PCR selection like sha256:0,2,4,7"))?;
            let hash_alg = match alg.trim() {
                "sha1" => TPM_ALG_SHA1,
                "sha256" => TPM_ALG_SHA256,
                "sha384" => TPM_ALG_SHA384,
                "sha512" => TPM_ALG_SHA512,
                other => {
                    return Err(format!(
                        "{other:?} is not a PCR bank: use sha1, sha256, sha384 or sha512"
                    ))
                }
            };
            let number = |p: &str| {
                p.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|n| *n < 24)
                    .ok_or_else(|| format!("{p:?} is not a PCR number from 0 to 23"))
            };
            let mut pcrs = Vec::new();
            for item in list.split(',') {
                match item.split_once('-') {
                    Some((first, last)) => pcrs.extend(number(first)?..=number(last)?),
                    None => pcrs.push(number(item)?),
                }
            }
            pcrs.sort_unstable();
            pcrs.dedup();
            if pcrs.is_empty() {
                return Err(format!(
                    "{bank:?} selects no PCR: write a PCR selection like sha256:0,2,4,7 or sha256:0-7"
                ));
            }
            Ok(PcrBank { hash_alg, pcrs })
        })
        .collect()
}

/// How a selection reads, `sha256:0,2,4,7`.
pub fn describe_selection(banks: &[PcrBank]) -> String {
    banks
        .iter()
        .map(|b| {
            format!(
                "{}:{}",
                alg_name(b.hash_alg).to_lowercase(),
                b.pcrs
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// The digest PolicyPCR compares: the hash (with the policy's hash algorithm) of the
/// selected PCR values concatenated in selection order.
pub fn pcr_values_digest(hash_alg: u16, values: &[Vec<u8>]) -> Result<Vec<u8>, PolicyError> {
    let parts: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    Ok(hash_parts(hash_alg, &parts)?)
}

/// TPM2_PolicyPCR(pcrDigest, pcrs) as a key file statement, in openssl_tpm2_engine's
/// layout (TPML_PCR_SELECTION, then the digest without its size), which that engine
/// reads; tpmd reads it and the TPM's own order alike ([`pcr_parts`]).
pub fn pcr_statement(banks: &[PcrBank], values_digest: &[u8]) -> PolicyStatement {
    let mut body = marshal_selection(banks);
    body.extend_from_slice(values_digest);
    PolicyStatement {
        command_code: CC_POLICY_PCR,
        command_policy: body,
    }
}

/// A PolicyPCR statement's selection and expected-values digest, from either layout key
/// files use: the TPM's command order (TPM2B pcrDigest, then TPML_PCR_SELECTION) or
/// openssl_tpm2_engine's (the selection, then the bare digest).
pub fn pcr_parts(body: &[u8]) -> Option<(Vec<PcrBank>, Vec<u8>)> {
    let digest_sizes = [20, 32, 48, 64];
    let tpm_order = || {
        let mut r = Reader::new(body);
        let digest = r.read_tpm2b("pcrDigest").ok()?.to_vec();
        let banks = read_selection(&mut r).ok()?;
        (r.remaining() == 0 && digest_sizes.contains(&digest.len())).then_some((banks, digest))
    };
    let engine_order = || {
        let mut r = Reader::new(body);
        let banks = read_selection(&mut r).ok()?;
        let digest = r.read_bytes(r.remaining(), "pcrDigest").ok()?.to_vec();
        digest_sizes
            .contains(&digest.len())
            .then_some((banks, digest))
    };
    tpm_order().or_else(engine_order)
}

pub fn auth_value_statement() -> PolicyStatement {
    PolicyStatement {
        command_code: CC_POLICY_AUTH_VALUE,
        command_policy: Vec::new(),
    }
}

/// TPM2_PolicyOR over alternative branch digests.
pub fn or_statement(digests: &[Vec<u8>]) -> PolicyStatement {
    let mut body = Vec::new();
    put_u32(&mut body, digests.len() as u32);
    for d in digests {
        put_tpm2b(&mut body, d);
    }
    PolicyStatement {
        command_code: CC_POLICY_OR,
        command_policy: body,
    }
}

/// The key file form of TPM2_PolicyAuthorize: the signing key's TPM2B_PUBLIC, the
/// policyRef, and a TPMT_SIGNATURE (TPM_ALG_NULL in the key's own `policy`).
pub fn authorize_statement(
    signer: &TpmPublic,
    policy_ref: &[u8],
    signature: &[u8],
) -> PolicyStatement {
    let mut body = signer.to_tpm2b();
    put_tpm2b(&mut body, policy_ref);
    if signature.is_empty() {
        put_u16(&mut body, TPM_ALG_NULL);
    } else {
        body.extend_from_slice(signature);
    }
    PolicyStatement {
        command_code: CC_POLICY_AUTHORIZE,
        command_policy: body,
    }
}

/// A PolicyAuthorize statement taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorize {
    pub signer: TpmPublic,
    /// The signer's TPM2B_PUBLIC, as LoadExternal takes it.
    pub signer_public: Vec<u8>,
    pub policy_ref: Vec<u8>,
    /// The TPMT_SIGNATURE (just TPM_ALG_NULL when absent).
    pub signature: Vec<u8>,
}

impl Authorize {
    pub fn parse(body: &[u8]) -> Result<Authorize, PolicyError> {
        let what = "PolicyAuthorize";
        let mut r = Reader::new(body);
        let public = r.read_tpm2b("keySign").map_err(malformed(what))?;
        let signer = TpmPublic::unmarshal(public)?;
        let policy_ref = r.read_tpm2b("policyRef").map_err(malformed(what))?.to_vec();
        let signature = r
            .read_bytes(r.remaining(), "signature")
            .map_err(malformed(what))?
            .to_vec();
        Ok(Authorize {
            signer,
            signer_public: tpm2b(public),
            policy_ref,
            signature,
        })
    }

    pub fn has_signature(&self) -> bool {
        self.signature.len() > 2
    }
}

fn extend(hash_alg: u16, parts: &[&[u8]]) -> Result<Vec<u8>, PolicyError> {
    Ok(hash_parts(hash_alg, parts)?)
}

/// The policy digest after `statement`, from `digest` (TPM 2.0 Part 3's update rule of
/// each command).
pub fn extend_statement(
    hash_alg: u16,
    digest: &[u8],
    statement: &PolicyStatement,
) -> Result<Vec<u8>, PolicyError> {
    let cc = statement.command_code.to_be_bytes();
    let body = statement.command_policy.as_slice();
    let zero = vec![0u8; digest.len()];
    match statement.command_code {
        CC_POLICY_PCR => {
            let (banks, pcr_digest) = pcr_parts(body).ok_or_else(|| PolicyError::Malformed {
                what: "PolicyPCR",
                detail: "neither the TPM's layout nor openssl_tpm2_engine's".into(),
            })?;
            extend(
                hash_alg,
                &[digest, &cc, &marshal_selection(&banks), &pcr_digest],
            )
        }
        CC_POLICY_AUTH_VALUE | CC_POLICY_PASSWORD => {
            // PolicyPassword extends exactly as PolicyAuthValue does.
            extend(hash_alg, &[digest, &CC_POLICY_AUTH_VALUE.to_be_bytes()])
        }
        CC_POLICY_COMMAND_CODE => extend(hash_alg, &[digest, &cc, body]),
        CC_POLICY_OR => {
            let mut r = Reader::new(body);
            let count = r.read_u32("count").map_err(malformed("PolicyOR"))?;
            let mut parts: Vec<&[u8]> = vec![&zero, &cc];
            for _ in 0..count {
                parts.push(r.read_tpm2b("digest").map_err(malformed("PolicyOR"))?);
            }
            extend(hash_alg, &parts)
        }
        CC_POLICY_AUTHORIZE => {
            let authorize = Authorize::parse(body)?;
            let name = authorize.signer.name()?;
            let inner = extend(hash_alg, &[&zero, &cc, &name])?;
            extend(hash_alg, &[&inner, &authorize.policy_ref])
        }
        CC_POLICY_SECRET => {
            let mut r = Reader::new(body);
            r.read_u32("objectHandleHint")
                .map_err(malformed("PolicySecret"))?;
            let name = r
                .read_tpm2b("objectName")
                .map_err(malformed("PolicySecret"))?;
            let policy_ref = r
                .read_tpm2b("policyRef")
                .map_err(malformed("PolicySecret"))?;
            let inner = extend(hash_alg, &[digest, &cc, name])?;
            extend(hash_alg, &[&inner, policy_ref])
        }
        other => Err(PolicyError::Unsupported(other)),
    }
}

/// The digest a fresh session reaches by running `statements` in order.
pub fn policy_digest(
    hash_alg: u16,
    statements: &[PolicyStatement],
) -> Result<Vec<u8>, PolicyError> {
    let size =
        digest_size(hash_alg).ok_or_else(|| PublicError::UnsupportedNameAlg(alg_name(hash_alg)))?;
    let mut digest = vec![0u8; size];
    for statement in statements {
        digest = extend_statement(hash_alg, &digest, statement)?;
    }
    Ok(digest)
}

/// What the owner signs to authorize `approved_policy` for keys whose PolicyAuthorize
/// names `policy_ref`: aHash = H(approvedPolicy || policyRef), with the signing key's
/// scheme hash.
pub fn authorization_digest(
    hash_alg: u16,
    approved_policy: &[u8],
    policy_ref: &[u8],
) -> Result<Vec<u8>, PolicyError> {
    extend(hash_alg, &[approved_policy, policy_ref])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_round_trip_and_read_as_written() {
        let banks = parse_selection("sha256:7,0,2,4,4").unwrap();
        assert_eq!(
            banks,
            vec![PcrBank {
                hash_alg: TPM_ALG_SHA256,
                pcrs: vec![0, 2, 4, 7]
            }]
        );
        assert_eq!(describe_selection(&banks), "sha256:0,2,4,7");
        let bytes = marshal_selection(&banks);
        assert_eq!(bytes, [0, 0, 0, 1, 0, 0x0B, 3, 0x95, 0, 0]);
        assert_eq!(read_selection(&mut Reader::new(&bytes)).unwrap(), banks);
        assert!(parse_selection("sha256:24").is_err());
        assert!(parse_selection("md5:1").is_err());
        assert!(parse_selection("0,1").is_err());
        assert_eq!(
            describe_selection(&parse_selection("sha256:0-3,16+sha1:7").unwrap()),
            "sha256:0,1,2,3,16+sha1:7"
        );
        assert!(parse_selection("sha256:3-1").is_err());
        assert!(parse_selection("sha256:0-24").is_err());
    }

    #[test]
    fn auth_value_digest_is_the_well_known_one() {
        // PolicyAuthValue alone, SHA-256: 8fcd2169ab92694e0c633f1ab772842b8241bbc20288981fc7ac1eddc1fddb0e
        let digest = policy_digest(TPM_ALG_SHA256, &[auth_value_statement()]).unwrap();
        assert_eq!(
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "8fcd2169ab92694e0c633f1ab772842b8241bbc20288981fc7ac1eddc1fddb0e"
        );
    }

    #[test]
    fn unknown_commands_are_named() {
        let s = PolicyStatement {
            command_code: 0x16D,
            command_policy: vec![],
        };
        assert_eq!(
            policy_digest(TPM_ALG_SHA256, &[s]).unwrap_err(),
            PolicyError::Unsupported(0x16D)
        );
    }
}
