//! tpmd-tpm2's SRK functions against a real swtpm. (They live here rather than in
//! tpmd-tpm2 because the simulator depends on tpmd-tpm2.)

use std::path::Path;
use std::process::Command;
use tpmd_tpm2::transport::OpenEsys;

use tpmd_simulator::{Family, Simulator};
use tpmd_tpm2::srk::{
    create_ecc_owner_primary, ecc_owner_primary_template, ensure_srk, srk_state, srk_template,
    SrkError, SrkState, SRK_HANDLE,
};
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    CapabilityData, EccParameter, EccPoint, EccScheme, HashScheme, Private, Public, PublicBuilder,
    PublicEccParametersBuilder,
};
use tss_esapi::traits::UnMarshall;
use tss_esapi::Context;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn bare_tpm() -> Result<Simulator, Box<dyn std::error::Error>> {
    Ok(Simulator::start_in_tempdir(Family::Tpm2, None, false)?)
}

/// Transient object handles currently loaded in the TPM.
fn transients(ctx: &mut Context) -> Result<usize, Box<dyn std::error::Error>> {
    let (data, _) = ctx.get_capability(CapabilityType::Handles, 0x8000_0000, 64)?;
    match data {
        CapabilityData::Handles(list) => Ok(list
            .iter()
            .filter(|h| (u32::from(**h) >> 24) == 0x80)
            .count()),
        _ => Err("unexpected capability data".into()),
    }
}

fn owner_primary(ctx: &mut Context, template: Public) -> tss_esapi::Result<KeyHandle> {
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
    })
    .map(|r| r.key_handle)
}

#[test]
fn ensure_srk_creates_the_tcg_srk_once_and_leaves_no_transients() -> TestResult {
    let sim = bare_tpm()?;
    let mut ctx = sim.transport().open()?;
    assert!(matches!(srk_state(&mut ctx)?, SrkState::Absent));
    assert!(ensure_srk(&mut ctx)?);
    assert_eq!(transients(&mut ctx)?, 0);
    let SrkState::Present { public } = srk_state(&mut ctx)? else {
        return Err("SRK missing after ensure_srk".into());
    };
    assert!(!ensure_srk(&mut ctx)?);
    assert_eq!(transients(&mut ctx)?, 0);

    // The persistent key is the primary of the template: recreating it gives the same
    // public key, and the template fields survive (the TPM fills in unique).
    let again = owner_primary(&mut ctx, srk_template()?)?;
    let (recreated, _, _) = ctx.read_public(again)?;
    ctx.flush_context(again.into())?;
    assert_eq!(recreated, public);
    let Public::Rsa {
        object_attributes,
        unique,
        ..
    } = &public
    else {
        return Err("the SRK is not RSA".into());
    };
    assert_eq!(u32::from(*object_attributes), 0x0003_0472);
    assert_eq!(unique.value().len(), 256);
    Ok(())
}

#[test]
fn ensure_srk_refuses_to_replace_a_signing_key() -> TestResult {
    let sim = bare_tpm()?;
    let mut ctx = sim.transport().open()?;
    let attrs = tss_esapi::attributes::ObjectAttributes::builder()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .build()?;
    let template = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_unrestricted_signing_key(
                EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()?;
    let key = owner_primary(&mut ctx, template)?;
    let persistent = Persistent::Persistent(PersistentTpmHandle::new(SRK_HANDLE)?);
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.evict_control(Provision::Owner, key.into(), persistent)
    })?;
    ctx.flush_context(key.into())?;

    assert!(matches!(srk_state(&mut ctx)?, SrkState::WrongType(_)));
    match ensure_srk(&mut ctx) {
        Err(err @ SrkError::Occupied(_)) => {
            let text = err.to_string();
            assert!(text.contains("tpm2_evictcontrol"), "{text}");
            assert!(text.contains("sign=true"), "{text}");
        }
        other => return Err(format!("expected Occupied, got {other:?}").into()),
    }
    assert_eq!(transients(&mut ctx)?, 0);
    Ok(())
}

#[test]
fn the_ecc_owner_primary_is_deterministic_and_differs_from_the_tcg_ecc_srk() -> TestResult {
    let sim = bare_tpm()?;
    let mut ctx = sim.transport().open()?;
    let a = create_ecc_owner_primary(&mut ctx)?;
    let (pa, _, _) = ctx.read_public(a)?;
    ctx.flush_context(a.into())?;
    let b = create_ecc_owner_primary(&mut ctx)?;
    let (pb, _, _) = ctx.read_public(b)?;
    ctx.flush_context(b.into())?;
    assert_eq!(pa, pb);

    // The TCG provisioning-guidance ECC SRK (unique = 32 zero bytes each) is another key.
    let Public::Ecc {
        object_attributes,
        name_hashing_algorithm,
        auth_policy,
        parameters,
        ..
    } = ecc_owner_primary_template()?
    else {
        return Err("not ECC".into());
    };
    let tcg = Public::Ecc {
        object_attributes,
        name_hashing_algorithm,
        auth_policy,
        parameters,
        unique: EccPoint::new(
            EccParameter::try_from(vec![0u8; 32])?,
            EccParameter::try_from(vec![0u8; 32])?,
        ),
    };
    let c = owner_primary(&mut ctx, tcg)?;
    let (pc, _, _) = ctx.read_public(c)?;
    ctx.flush_context(c.into())?;
    assert_ne!(pa, pc);
    Ok(())
}

/// Minimal DER reader: (tag, content, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        let (bytes, rest) = rest.split_at_checked(n)?;
        (
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
            rest,
        )
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// (parent, TPM2B_PUBLIC, TPM2B_PRIVATE) of a DER TSS2 PRIVATE KEY.
fn parse_tss2_key(data: &[u8]) -> Option<(u32, Vec<u8>, Vec<u8>)> {
    let (0x30, mut body, _) = der(data)? else {
        return None;
    };
    let mut fields = Vec::new();
    while !body.is_empty() {
        let (tag, content, rest) = der(body)?;
        fields.push((tag, content));
        body = rest;
    }
    let parent = fields.iter().find(|(t, _)| *t == 0x02)?.1;
    let parent = parent
        .iter()
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let mut octets = fields
        .iter()
        .filter(|(t, _)| *t == 0x04)
        .map(|(_, c)| c.to_vec());
    Some((parent, octets.next()?, octets.next()?))
}

fn tpm2_openssl_available() -> bool {
    Path::new("/usr/lib/x86_64-linux-gnu/ossl-modules/tpm2.so").exists()
        || Command::new("openssl")
            .args(["list", "-providers", "-provider", "tpm2"])
            .output()
            .is_ok_and(|o| o.status.success())
}

#[test]
fn keys_generated_by_tpm2_openssl_load_under_the_ecc_owner_primary() -> TestResult {
    if !tpm2_openssl_available() {
        eprintln!(
            "skipped: the tpm2-openssl provider is not installed (apt-get install tpm2-openssl)"
        );
        return Ok(());
    }
    let sim = bare_tpm()?;
    let out = tempfile::tempdir()?;
    let key_path = out.path().join("key.der");
    let status = Command::new("openssl")
        .args(["genpkey", "-provider", "tpm2", "-algorithm", "EC"])
        .args(["-pkeyopt", "group:P-256", "-outform", "DER", "-out"])
        .arg(&key_path)
        .env("TPM2OPENSSL_TCTI", sim.transport().to_string())
        .output()?;
    assert!(
        status.status.success(),
        "openssl genpkey failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let (parent, public, private) =
        parse_tss2_key(&std::fs::read(&key_path)?).ok_or("cannot parse the TSS2 key")?;
    assert_eq!(parent, 0x4000_0001);
    // Strip the TPM2B size prefixes.
    let public = Public::unmarshall(public.get(2..).ok_or("short public")?)?;
    let private = Private::try_from(private.get(2..).ok_or("short private")?.to_vec())?;

    let mut ctx = sim.transport().open()?;
    let parent = create_ecc_owner_primary(&mut ctx)?;
    let loaded = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.load(parent, private.clone(), public.clone())
    });
    ctx.flush_context(parent.into())?;
    let loaded = loaded?;
    ctx.flush_context(loaded.into())?;

    // Under the RSA SRK the same blob must not load (a different parent).
    ensure_srk(&mut ctx)?;
    let srk = ctx.tr_from_tpm_public(tss_esapi::handles::TpmHandle::Persistent(
        PersistentTpmHandle::new(SRK_HANDLE)?,
    ))?;
    let wrong = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.load(srk.into(), private, public)
    });
    assert!(wrong.is_err());
    Ok(())
}
