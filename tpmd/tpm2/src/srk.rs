//! The storage root key (SRK) and the other standard storage primaries.
//!
//! tpmd wraps keys under the SRK at the persistent handle [`SRK_HANDLE`]
//! (0x81000001), created from the TCG standard RSA-2048 storage template. Key files
//! written by tpm2-openssl and openssl_tpm2_engine may instead name the owner
//! hierarchy (0x40000001) as their parent; those tools then create an ECC P-256
//! storage primary on the fly, which [`create_ecc_owner_primary`] recreates
//! bit-for-bit (same template, same seed, so the same key).

use tpmd_api::public::TpmPublic;
use tss_esapi::attributes::ObjectAttributes;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    CapabilityData, Digest, EccParameter, EccPoint, EccScheme, KeyDerivationFunctionScheme, Public,
    PublicBuilder, PublicEccParametersBuilder, PublicKeyRsa, PublicRsaParametersBuilder,
    RsaExponent, RsaScheme, SymmetricDefinitionObject,
};
use tss_esapi::traits::Marshall;
use tss_esapi::{Context, Error as TssError};

use crate::tpm::{Tpm, TpmCallError};
use crate::wire::{handle, ops, AuthCommand};

/// The persistent handle of the storage root key.
pub const SRK_HANDLE: u32 = 0x8100_0001;

/// The owner (storage) hierarchy handle, as key files name it when their parent is a
/// primary created on the fly rather than a persistent key.
pub const OWNER_HIERARCHY_HANDLE: u32 = 0x4000_0001;

#[derive(Debug, thiserror::Error)]
pub enum SrkError {
    #[error(
        "cannot build the {which} template: {source}; this is a bug in tpmd-tpm2, please report it"
    )]
    Template {
        which: &'static str,
        #[source]
        source: TssError,
    },
    #[error("cannot read persistent handle 0x81000001: {0}; check that the TPM is reachable and started")]
    Read(#[source] TssError),
    #[error("cannot create a storage primary in the owner hierarchy: {0}; if the owner hierarchy has a password, clear it (`tpm2_changeauth -c o -p OLD`) or create the SRK yourself with tpm2_createprimary and tpm2_evictcontrol")]
    CreatePrimary(#[source] TssError),
    #[error("cannot make the SRK persistent at 0x81000001: {0}; if the TPM's NV memory is full, remove unused persistent keys with `tpm2_evictcontrol -C o -c HANDLE`")]
    EvictControl(#[source] TssError),
    #[error(
        "cannot flush the transient SRK: {0}; the TPM may be in a bad state, restart it or tpmd"
    )]
    Flush(#[source] TssError),
    #[error("cannot provision the SRK: {0}; check that the TPM is reachable and started")]
    Tpm(#[from] TpmCallError),
    #[error("persistent handle 0x81000001 holds {0}, not a storage key; tpmd will not overwrite it: remove it with `tpm2_evictcontrol -C o -c 0x81000001` if nothing uses it")]
    Occupied(String),
}

/// What the TPM holds at [`SRK_HANDLE`].
#[derive(Debug, Clone)]
pub enum SrkState {
    /// A storage key (restricted decryption key, RSA or ECC): usable as the parent of
    /// wrapped keys, whether or not tpmd created it.
    Present { public: Public },
    /// Nothing at 0x81000001.
    Absent,
    /// Some other object (a signing key, a sealed blob...); the string describes it.
    WrongType(String),
}

fn storage_attributes() -> Result<ObjectAttributes, TssError> {
    ObjectAttributes::builder()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
}

/// The TCG "Storage Primary Key (SRK) RSA-2048 template" (TCG TPM v2.0 Provisioning
/// Guidance, and the EK Credential Profile's SRK template): RSA 2048, nameAlg SHA256,
/// fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|restricted|decrypt,
/// empty authPolicy, AES-128-CFB, scheme NULL, exponent 0, unique = 256 zero bytes.
pub fn srk_template() -> Result<Public, SrkError> {
    let build = || -> Result<Public, TssError> {
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(storage_attributes()?)
            .with_auth_policy(Digest::default())
            .with_rsa_parameters(
                PublicRsaParametersBuilder::new_restricted_decryption_key(
                    SymmetricDefinitionObject::AES_128_CFB,
                    RsaKeyBits::Rsa2048,
                    RsaExponent::ZERO_EXPONENT,
                )
                .with_scheme(RsaScheme::Null)
                .build()?,
            )
            .with_rsa_unique_identifier(PublicKeyRsa::new_empty_with_size(RsaKeyBits::Rsa2048))
            .build()
    };
    build().map_err(|source| SrkError::Template {
        which: "RSA-2048 SRK",
        source,
    })
}

/// The ECC P-256 storage primary that tpm2-openssl (1.1.x) and openssl_tpm2_engine
/// create under the owner hierarchy when a key file's parent is 0x40000001: ECC NIST
/// P-256, nameAlg SHA256, the SRK attributes, empty authPolicy, AES-128-CFB, scheme
/// NULL, kdf NULL, and an *empty* unique (x and y of size 0).
///
/// Note that this differs from the TCG provisioning-guidance ECC SRK, whose unique is
/// 32 zero bytes in each of x and y: the unique field feeds the key derivation, so the
/// two templates give different keys, and a key file created by tpm2-openssl only
/// loads under the empty-unique primary. This was checked against tpm2-openssl 1.1.1
/// on swtpm (see the simulator crate's tests).
pub fn ecc_owner_primary_template() -> Result<Public, SrkError> {
    let build = || -> Result<Public, TssError> {
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(storage_attributes()?)
            .with_auth_policy(Digest::default())
            .with_ecc_parameters(
                PublicEccParametersBuilder::new_restricted_decryption_key(
                    SymmetricDefinitionObject::AES_128_CFB,
                    EccCurve::NistP256,
                )
                .with_ecc_scheme(EccScheme::Null)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .build()?,
            )
            .with_ecc_unique_identifier(EccPoint::new(
                EccParameter::default(),
                EccParameter::default(),
            ))
            .build()
    };
    build().map_err(|source| SrkError::Template {
        which: "ECC P-256 owner primary",
        source,
    })
}

fn srk_tpm_handle() -> Result<PersistentTpmHandle, SrkError> {
    PersistentTpmHandle::new(SRK_HANDLE).map_err(|source| SrkError::Template {
        which: "persistent handle 0x81000001",
        source,
    })
}

fn is_handle_error(err: &TssError) -> bool {
    matches!(err, TssError::Tss2Error(rc) if rc.kind() == Some(Tss2ResponseCodeKind::Handle))
}

/// Describes why `public` cannot be a storage parent, or `None` if it can.
fn storage_problem(public: &Public) -> Option<String> {
    let kind = match public {
        Public::Rsa { .. } => "an RSA key",
        Public::Ecc { .. } => "an ECC key",
        Public::KeyedHash { .. } => {
            return Some("a keyed-hash object (HMAC key or sealed data)".into())
        }
        Public::SymCipher { .. } => return Some("a symmetric cipher key".into()),
    };
    let attrs = public.object_attributes();
    if attrs.restricted() && attrs.decrypt() && !attrs.sign_encrypt() {
        None
    } else {
        Some(format!(
            "{kind} with restricted={}, decrypt={}, sign={}",
            attrs.restricted(),
            attrs.decrypt(),
            attrs.sign_encrypt()
        ))
    }
}

/// Whether the TPM lists 0x81000001 among its persistent handles. Asking first keeps
/// the TSS from logging a TPM_RC_HANDLE error for the common "absent" case.
fn srk_listed(ctx: &mut Context) -> Result<bool, SrkError> {
    let (data, _more) = ctx
        .execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, SRK_HANDLE, 1))
        .map_err(SrkError::Read)?;
    Ok(match data {
        CapabilityData::Handles(list) => list.iter().any(|h| u32::from(*h) == SRK_HANDLE),
        _ => true,
    })
}

/// Reads what is at 0x81000001. The ESYS handle used for the read is closed again on
/// every path.
pub fn srk_state(ctx: &mut Context) -> Result<SrkState, SrkError> {
    let tpm_handle = TpmHandle::Persistent(srk_tpm_handle()?);
    if !srk_listed(ctx)? {
        return Ok(SrkState::Absent);
    }
    ctx.execute_without_session(|ctx| {
        let mut handle = match ctx.tr_from_tpm_public(tpm_handle) {
            Ok(h) => h,
            Err(e) if is_handle_error(&e) => return Ok(SrkState::Absent),
            Err(e) => return Err(SrkError::Read(e)),
        };
        let read = ctx.read_public(handle.into());
        let closed = ctx.tr_close(&mut handle);
        let (public, _, _) = read.map_err(SrkError::Read)?;
        closed.map_err(SrkError::Read)?;
        Ok(match storage_problem(&public) {
            None => SrkState::Present { public },
            Some(problem) => SrkState::WrongType(problem),
        })
    })
}

fn create_owner_primary(ctx: &mut Context, template: Public) -> Result<KeyHandle, SrkError> {
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
    })
    .map(|created| created.key_handle)
    .map_err(SrkError::CreatePrimary)
}

/// Makes sure a storage key is at 0x81000001: if the handle is empty, creates the
/// primary from [`srk_template`] in the owner hierarchy (empty owner auth), persists it
/// with EvictControl and flushes the transient copy. Returns whether it created it.
/// An existing storage key is kept as it is; any other object there is an error.
pub fn ensure_srk(ctx: &mut Context) -> Result<bool, SrkError> {
    match srk_state(ctx)? {
        SrkState::Present { .. } => return Ok(false),
        SrkState::WrongType(what) => return Err(SrkError::Occupied(what)),
        SrkState::Absent => {}
    }
    let persistent = Persistent::Persistent(srk_tpm_handle()?);
    let transient = create_owner_primary(ctx, srk_template()?)?;
    let evicted = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.evict_control(Provision::Owner, transient.into(), persistent)
    });
    let flushed = ctx.execute_without_session(|ctx| ctx.flush_context(transient.into()));
    let mut persistent_handle = evicted.map_err(SrkError::EvictControl)?;
    flushed.map_err(SrkError::Flush)?;
    // The ESYS object for the new persistent handle is only bookkeeping; closing it
    // leaves the key in the TPM.
    if persistent_handle != ObjectHandle::None {
        ctx.tr_close(&mut persistent_handle)
            .map_err(SrkError::EvictControl)?;
    }
    tracing::info!("created the SRK at 0x{SRK_HANDLE:08x}");
    Ok(true)
}

/// The TPMT_PUBLIC bytes of a template, as TPM2_Create and TPM2_CreatePrimary take it.
pub fn template_bytes(template: &Public) -> Result<Vec<u8>, SrkError> {
    template.marshall().map_err(|source| SrkError::Template {
        which: "marshalled template",
        source,
    })
}

/// Why the TPM2B_PUBLIC `public` cannot be a storage parent, or `None` if it can.
fn storage_problem_of(public: &[u8]) -> Option<String> {
    let parsed = match TpmPublic::from_tpm2b(public) {
        Ok(p) => p,
        Err(e) => return Some(format!("an object tpmd cannot use as a parent ({e})")),
    };
    let attrs = parsed.attributes;
    let flag = |bit: u32| attrs & bit != 0;
    use tpmd_api::marshal::{TPMA_OBJECT_DECRYPT, TPMA_OBJECT_RESTRICTED, TPMA_OBJECT_SIGN};
    if flag(TPMA_OBJECT_RESTRICTED) && flag(TPMA_OBJECT_DECRYPT) && !flag(TPMA_OBJECT_SIGN) {
        None
    } else {
        Some(format!(
            "a {} key with restricted={}, decrypt={}, sign={}",
            parsed.key_type_name(),
            flag(TPMA_OBJECT_RESTRICTED),
            flag(TPMA_OBJECT_DECRYPT),
            flag(TPMA_OBJECT_SIGN)
        ))
    }
}

/// What is at 0x81000001, read with our own command path: the SRK's TPM2B_PUBLIC, or
/// `None` when the handle is empty.
pub fn read_srk(tpm: &mut Tpm) -> Result<Option<Vec<u8>>, SrkError> {
    match tpm.execute(&ops::read_public(SRK_HANDLE), &[]) {
        Ok(response) => {
            let (public, _name) = ops::parse_read_public(&response).map_err(TpmCallError::from)?;
            match storage_problem_of(&public) {
                None => Ok(Some(public)),
                Some(problem) => Err(SrkError::Occupied(problem)),
            }
        }
        Err(e) if e.response_code().is_some_and(|rc| rc.is_handle()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// [`ensure_srk`] over our own command path (any transport, unix sockets included).
pub fn provision_srk(tpm: &mut Tpm) -> Result<bool, SrkError> {
    if read_srk(tpm)?.is_some() {
        return Ok(false);
    }
    let template = template_bytes(&srk_template()?)?;
    let owner = [AuthCommand::password(&[])];
    let created = tpm.execute(&ops::create_primary(handle::OWNER, &template), &owner)?;
    let transient = ops::returned_handle(&created).map_err(TpmCallError::from)?;
    let evicted = tpm.execute(&ops::evict_control(transient, SRK_HANDLE), &owner);
    let flushed = tpm.execute(&ops::flush_context(transient), &[]);
    evicted?;
    flushed?;
    tracing::info!("created the SRK at 0x{SRK_HANDLE:08x}");
    Ok(true)
}

/// Creates the ECC P-256 owner primary of [`ecc_owner_primary_template`] as a transient
/// object. The caller owns the handle and must flush it.
pub fn create_ecc_owner_primary(ctx: &mut Context) -> Result<KeyHandle, SrkError> {
    create_owner_primary(ctx, ecc_owner_primary_template()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tss_esapi::structures::SymmetricDefinitionObject as Sym;

    #[test]
    fn srk_template_is_the_tcg_rsa_2048_template() {
        let Ok(Public::Rsa {
            object_attributes,
            name_hashing_algorithm,
            auth_policy,
            parameters,
            unique,
        }) = srk_template()
        else {
            panic!("not an RSA template");
        };
        assert_eq!(name_hashing_algorithm, HashingAlgorithm::Sha256);
        assert_eq!(u32::from(object_attributes), 0x0003_0472);
        assert!(auth_policy.is_empty());
        assert_eq!(parameters.symmetric_definition_object(), Sym::AES_128_CFB);
        assert_eq!(parameters.rsa_scheme(), RsaScheme::Null);
        assert_eq!(parameters.key_bits(), RsaKeyBits::Rsa2048);
        assert_eq!(parameters.exponent().value(), 0);
        assert_eq!(unique.value(), &[0u8; 256][..]);
    }

    #[test]
    fn ecc_owner_template_matches_tpm2_openssl() {
        let Ok(Public::Ecc {
            object_attributes,
            name_hashing_algorithm,
            auth_policy,
            parameters,
            unique,
        }) = ecc_owner_primary_template()
        else {
            panic!("not an ECC template");
        };
        assert_eq!(name_hashing_algorithm, HashingAlgorithm::Sha256);
        assert_eq!(u32::from(object_attributes), 0x0003_0472);
        assert!(auth_policy.is_empty());
        assert_eq!(parameters.symmetric_definition_object(), Sym::AES_128_CFB);
        assert_eq!(parameters.ecc_scheme(), EccScheme::Null);
        assert_eq!(parameters.ecc_curve(), EccCurve::NistP256);
        assert_eq!(
            parameters.key_derivation_function_scheme(),
            KeyDerivationFunctionScheme::Null
        );
        assert!(unique.x().is_empty() && unique.y().is_empty());
    }

    #[test]
    fn storage_problem_rejects_signing_keys() {
        let Ok(srk) = srk_template() else {
            panic!("template");
        };
        assert!(storage_problem(&srk).is_none());
        let Ok(attrs) = ObjectAttributes::builder()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_sign_encrypt(true)
            .build()
        else {
            panic!("attrs");
        };
        let Ok(signing) = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new_unrestricted_signing_key(
                    EccScheme::EcDsa(tss_esapi::structures::HashScheme::new(
                        HashingAlgorithm::Sha256,
                    )),
                    EccCurve::NistP256,
                )
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
        else {
            panic!("signing template");
        };
        let problem = storage_problem(&signing).unwrap_or_default();
        assert!(problem.contains("sign=true"), "{problem}");
    }

    #[test]
    fn the_srk_handle_is_persistent() {
        assert!(srk_tpm_handle().is_ok());
    }
}
