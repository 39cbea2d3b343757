//! The policy parsers against many mutated inputs (what the cargo-fuzz targets in
//! `tpmd/api/fuzz` do without a nightly toolchain): a key file with `policy` and
//! `authPolicy`, a signed policy file, and statement bodies, each with bits flipped,
//! bytes replaced, inserted and removed, lengths changed and cut anywhere. Nothing may
//! panic, and whatever parses must write back to the same value. Also the byte-exact
//! ASN.1 round trip of a key file with every policy field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tpmd_api::auth_policy_file;
use tpmd_api::fuzzing::{check_auth_policy_file, check_key_file, check_statement_body};
use tpmd_api::keyfile::{AuthPolicy, KeyFileKind, PolicyStatement, TpmKeyFile};
use tpmd_api::marshal::{put_tpm2b, put_u16, tpm2b, TPM_ALG_ECDSA, TPM_ALG_SHA256};
use tpmd_api::policy::{
    auth_value_statement, authorize_statement, or_statement, parse_selection, pcr_statement,
    policy_digest, Authorize,
};
use tpmd_api::public::TpmPublic;

const ROUNDS: usize = 4000;

fn owner() -> TpmPublic {
    TpmPublic::standard_ecc_srk_with_point(&[7; 32], &[8; 32])
}

fn signature() -> Vec<u8> {
    let mut sig = Vec::new();
    put_u16(&mut sig, TPM_ALG_ECDSA);
    put_u16(&mut sig, TPM_ALG_SHA256);
    put_tpm2b(&mut sig, &[0x11; 32]);
    put_tpm2b(&mut sig, &[0x22; 32]);
    sig
}

fn signed_policy(values: u8) -> AuthPolicy {
    AuthPolicy {
        name: Some(format!("values {values}")),
        statements: vec![
            pcr_statement(
                &parse_selection("sha256:0,2,4,7+sha1:16").unwrap(),
                &[values; 32],
            ),
            authorize_statement(&owner(), b"laptop", &signature()),
        ],
    }
}

fn key_file() -> TpmKeyFile {
    TpmKeyFile {
        kind: KeyFileKind::Loadable,
        empty_auth: false,
        parent: 0x8100_0001,
        public: TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32]).to_tpm2b(),
        private: tpm2b(&[0x55; 120]),
        secret: None,
        policy: vec![
            authorize_statement(&owner(), b"laptop", &[]),
            auth_value_statement(),
        ],
        auth_policies: vec![signed_policy(1), signed_policy(2)],
        description: Some("tpmd-pcr-values: sha256:16=00".into()),
    }
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        if data.is_empty() {
            data.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..data.len());
        match rng.gen_range(0..7) {
            0 => data[at] ^= 1 << rng.gen_range(0..8),
            1 => data[at] = rng.gen(),
            2 => data.insert(at, rng.gen()),
            3 => {
                data.remove(at);
            }
            4 => data.truncate(at),
            // Lengths and counts: the bytes parsers trust most.
            5 => data[at] = [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff][rng.gen_range(0..7)],
            _ => {
                let end = rng.gen_range(at..data.len());
                let copy = data[at..=end].to_vec();
                let to = rng.gen_range(0..data.len());
                data.splice(to..to, copy);
            }
        }
    }
    data
}

#[test]
fn key_file_policy_fields_round_trip_byte_exact() {
    let key = key_file();
    let der = key.to_der();
    let parsed = TpmKeyFile::from_der(&der).unwrap();
    assert_eq!(parsed, key);
    assert_eq!(parsed.to_der(), der);
    assert_eq!(TpmKeyFile::parse(key.to_pem().as_bytes()).unwrap(), key);
    // The authPolicy digest a key's public area carries is the one its policy reaches.
    let digest = policy_digest(TPM_ALG_SHA256, &parsed.policy).unwrap();
    assert_eq!(digest.len(), 32);
    let signed = auth_policy_file::signed_authorize(&parsed.auth_policies[0]).unwrap();
    let key_side = auth_policy_file::key_authorize(&parsed.policy).unwrap();
    assert!(signed.has_signature() && !key_side.has_signature());
    assert!(auth_policy_file::serves(
        &key_side,
        &parsed.auth_policies[1]
    ));
    // PolicyOR round-trips as well.
    let mut with_or = key.clone();
    with_or.policy = vec![or_statement(&[vec![1; 32], vec![2; 32]])];
    assert_eq!(TpmKeyFile::from_der(&with_or.to_der()).unwrap(), with_or);
}

#[test]
fn mutated_key_files_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x7064_6b66);
    let der = key_file().to_der();
    let pem = key_file().to_pem().into_bytes();
    check_key_file(&der);
    check_key_file(&pem);
    let mut parsed = 0;
    for _ in 0..ROUNDS {
        let input = mutate(&mut rng, &der);
        parsed += usize::from(TpmKeyFile::parse(&input).is_ok());
        check_key_file(&input);
    }
    // Some mutations (inside the TPM2B bodies) must still parse, or the run tested only
    // the first bytes.
    assert!(parsed > ROUNDS / 50, "only {parsed} mutated files parsed");
    for _ in 0..ROUNDS / 4 {
        check_key_file(&mutate(&mut rng, &pem));
    }
}

#[test]
fn mutated_signed_policy_files_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x6175_7468);
    let policy = signed_policy(3);
    let der = policy.to_der();
    let pem = auth_policy_file::to_pem(&policy).into_bytes();
    check_auth_policy_file(&der);
    let mut parsed = 0;
    for _ in 0..ROUNDS {
        let input = mutate(&mut rng, &der);
        parsed += usize::from(auth_policy_file::parse(&input).is_ok());
        check_auth_policy_file(&input);
        check_auth_policy_file(&mutate(&mut rng, &pem));
    }
    assert!(
        parsed > ROUNDS / 50,
        "only {parsed} mutated policies parsed"
    );
}

#[test]
fn mutated_statement_bodies_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x7374_6d74);
    let seeds: Vec<PolicyStatement> = vec![
        pcr_statement(&parse_selection("sha256:0,16").unwrap(), &[9; 32]),
        authorize_statement(&owner(), b"ref", &signature()),
        authorize_statement(
            &TpmPublic::standard_srk_with_modulus(&[0xC5; 256]),
            b"",
            &[],
        ),
        or_statement(&[vec![1; 32], vec![2; 32], vec![3; 32]]),
    ];
    let mut authorized = 0;
    for _ in 0..ROUNDS {
        let seed = &seeds[rng.gen_range(0..seeds.len())];
        let body = mutate(&mut rng, &seed.command_policy);
        authorized += usize::from(Authorize::parse(&body).is_ok());
        for pick in 0..7u8 {
            let mut input = vec![pick];
            input.extend_from_slice(&body);
            check_statement_body(&input);
        }
    }
    assert!(authorized > 0);
    // Random bytes too, not only mutations of valid bodies.
    for _ in 0..ROUNDS {
        let len = rng.gen_range(0..600);
        let input: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        check_statement_body(&input);
        check_key_file(&input);
        check_auth_policy_file(&input);
    }
}
