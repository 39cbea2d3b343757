//! The one authorization session the resource manager keeps: HMAC, salted to the SRK,
//! AES-128-CFB parameter encryption. Started once and reused; each command only flips
//! which directions are encrypted (a TPM rejects encryption of a parameter that is not
//! a sized buffer).

use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::SymmetricDefinition;
use tss_esapi::Context;

use super::error::{TpmResult, TssResultExt};

/// Which parameters of the next command are secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crypt {
    /// None (a digest to sign, an already-encrypted blob): with an empty auth value a
    /// plain password session does, which spares the TPM an HMAC per command.
    Nothing,
    /// The first command parameter (a key's auth, an inPrivate, a digest).
    Command,
    /// The first command and response parameters (ciphertext in, plaintext out).
    Both,
}

pub fn start(ctx: &mut Context, salt_key: Option<KeyHandle>) -> TpmResult<AuthSession> {
    let session = ctx
        .execute_without_session(|ctx| {
            ctx.start_auth_session(
                salt_key,
                None,
                None,
                SessionType::Hmac,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
        })
        .tpm("StartAuthSession")?
        .ok_or_else(|| super::error::TpmError::Stack {
            command: "StartAuthSession",
            detail: "no session handle returned".into(),
        })?;
    set_crypt(ctx, session, Crypt::Command)?;
    ctx.set_sessions((Some(session), None, None));
    Ok(session)
}

pub fn set_crypt(ctx: &mut Context, session: AuthSession, crypt: Crypt) -> TpmResult<()> {
    let (attributes, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .with_decrypt(crypt != Crypt::Nothing)
        .with_encrypt(crypt == Crypt::Both)
        .build();
    ctx.tr_sess_set_attributes(session, attributes, mask)
        .tpm("TRSess_SetAttributes")
}
