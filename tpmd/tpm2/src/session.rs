//! An HMAC authorization session computed in software (TPM 2.0 Part 1, "Authorization
//! Area", "HMAC Authorization", "Session-based encryption"): salted to a storage key so
//! nobody watching the TPM bus learns the session key, continued across commands, with
//! AES-CFB encryption of the first command and response parameters where secrets travel.
//! No I/O: the caller sends what this builds and hands back what the TPM answered.

use rand::rngs::OsRng;
use rand::RngCore;
use tpmd_api::crypto::{self, CryptoError};
use tpmd_api::marshal::{put_u32, TPM_ALG_SHA256};
use tpmd_api::public::{hash_parts, TpmPublic};
use zeroize::Zeroizing;

use crate::wire::ops::{self, SessionCipher};
use crate::wire::{handle, session_attr, AuthCommand, Command, Response};

const HASH: u16 = TPM_ALG_SHA256;
const DIGEST_LEN: usize = 32;
const AES_BITS: u16 = 128;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("the TPM's answer failed its session HMAC check: the response was altered or the session is out of step")]
    ResponseHmac,
    #[error("the TPM's answer lacks the session's authorization")]
    MissingResponseAuth,
    #[error("this command has no sized first parameter to encrypt")]
    NoSizedParameter,
    #[error("no session has been started")]
    NotStarted,
}

/// Which parameters of a command travel encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crypt {
    Nothing,
    /// The first command parameter (an auth value, a digest...).
    Command,
    /// The first command and response parameters (ciphertext in, plaintext out).
    Both,
    /// The first response parameter only (random bytes out).
    Response,
}

/// A StartAuthSession sent but not yet answered.
pub struct PendingSession {
    nonce_caller: Vec<u8>,
    salt: Zeroizing<Vec<u8>>,
    policy: bool,
}

/// A started session: an HMAC session continued across commands, or a policy session
/// that authorizes one command after its policy ran.
#[derive(Debug)]
pub struct HmacSession {
    pub handle: u32,
    session_key: Zeroizing<Vec<u8>>,
    nonce_tpm: Vec<u8>,
    policy: bool,
    /// Policy sessions: TPM2_PolicyAuthValue ran, so the entity's auth value enters the
    /// HMAC (as in an HMAC session); otherwise the TPM checks no HMAC.
    auth_value_needed: bool,
}

/// One authorized command in flight: what checking its response needs.
pub struct AuthorizedCall {
    code: u32,
    nonce_caller: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
    encrypt_response: bool,
}

fn fresh_nonce() -> Vec<u8> {
    let mut nonce = vec![0u8; DIGEST_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

/// An auth value as the TPM stores it: without trailing zero octets.
fn trimmed(auth: &[u8]) -> &[u8] {
    let end = auth.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    &auth[..end]
}

/// The name of a handle that has no public area: its own four bytes.
pub fn handle_name(handle: u32) -> Vec<u8> {
    handle.to_be_bytes().to_vec()
}

/// The CFB key and IV for one parameter (KDFa "CFB" over the session value).
fn cfb_key(
    value: &[u8],
    newer: &[u8],
    older: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, [u8; 16]), CryptoError> {
    let bytes = usize::from(AES_BITS / 8);
    let material = crypto::kdfa(HASH, value, "CFB", newer, older, u32::from(AES_BITS) + 128)?;
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&material[bytes..bytes + 16]);
    Ok((Zeroizing::new(material[..bytes].to_vec()), iv))
}

impl HmacSession {
    /// TPM2_StartAuthSession for an HMAC session with AES-128-CFB parameter encryption,
    /// salted to `salt_key` (its handle and public area) when given.
    pub fn start(
        salt_key: Option<(u32, &TpmPublic)>,
    ) -> Result<(Command, PendingSession), SessionError> {
        Self::start_of(salt_key, false)
    }

    /// TPM2_StartAuthSession for a policy session, salted like an HMAC session so that
    /// a TPM2_PolicyAuthValue HMAC and parameter encryption stay secret.
    pub fn start_policy(
        salt_key: Option<(u32, &TpmPublic)>,
    ) -> Result<(Command, PendingSession), SessionError> {
        Self::start_of(salt_key, true)
    }

    fn start_of(
        salt_key: Option<(u32, &TpmPublic)>,
        policy: bool,
    ) -> Result<(Command, PendingSession), SessionError> {
        let nonce_caller = fresh_nonce();
        let (tpm_key, salt, encrypted) = match salt_key {
            Some((handle, public)) => {
                let (salt, encrypted) = crypto::encrypt_secret(public, "SECRET")?;
                (handle, salt, encrypted)
            }
            None => (handle::NULL, Zeroizing::new(Vec::new()), Vec::new()),
        };
        let command = ops::start_auth_session(
            tpm_key,
            handle::NULL,
            &nonce_caller,
            &encrypted,
            if policy {
                ops::SESSION_POLICY
            } else {
                ops::SESSION_HMAC
            },
            SessionCipher::AesCfb { key_bits: AES_BITS },
            HASH,
        );
        Ok((
            command,
            PendingSession {
                nonce_caller,
                salt,
                policy,
            },
        ))
    }

    /// The session the TPM started in answer to [`HmacSession::start`].
    pub fn started(
        pending: PendingSession,
        response: &Response,
    ) -> Result<HmacSession, SessionError> {
        let (handle, nonce_tpm) = ops::parse_start_auth_session(response)
            .map_err(|_| SessionError::MissingResponseAuth)?;
        let session_key = if pending.salt.is_empty() {
            Zeroizing::new(Vec::new())
        } else {
            crypto::kdfa(
                HASH,
                &pending.salt,
                "ATH",
                &nonce_tpm,
                &pending.nonce_caller,
                (DIGEST_LEN * 8) as u32,
            )?
        };
        Ok(HmacSession {
            handle,
            session_key,
            nonce_tpm,
            policy: pending.policy,
            auth_value_needed: false,
        })
    }

    /// A policy session: TPM2_PolicyAuthValue was run, so the auth value counts.
    pub fn set_auth_value_needed(&mut self) {
        self.auth_value_needed = true;
    }

    /// A policy session after TPM2_PolicyRestart: its auth value is no longer needed
    /// until a TPM2_PolicyAuthValue runs again.
    pub fn reset_policy(&mut self) {
        self.auth_value_needed = false;
    }

    /// The key of this session's HMACs and parameter encryption for an entity with
    /// `auth`.
    fn session_value(&self, auth: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut key = Zeroizing::new(Vec::with_capacity(DIGEST_LEN + auth.len()));
        key.extend_from_slice(&self.session_key);
        if !self.policy || self.auth_value_needed {
            key.extend_from_slice(trimmed(auth));
        }
        key
    }

    /// Authorizes `command` for the entity whose auth value is `auth`, encrypting its
    /// first parameter as `crypt` says. `names` are the names of every handle in the
    /// command's handle area, in order.
    pub fn authorize(
        &self,
        command: &mut Command,
        names: &[&[u8]],
        auth: &[u8],
        crypt: Crypt,
    ) -> Result<(AuthCommand, AuthorizedCall), SessionError> {
        let nonce_caller = fresh_nonce();
        let key = self.session_value(auth);
        // A policy session serves one command and ends with it.
        let mut attributes = if self.policy {
            0
        } else {
            session_attr::CONTINUE_SESSION
        };
        if matches!(crypt, Crypt::Command | Crypt::Both) {
            attributes |= session_attr::DECRYPT;
            let (aes_key, iv) = cfb_key(&key, &nonce_caller, &self.nonce_tpm)?;
            let param = command
                .first_param_mut()
                .ok_or(SessionError::NoSizedParameter)?;
            crypto::aes_cfb_encrypt(&aes_key, &iv, param)?;
        }
        if matches!(crypt, Crypt::Both | Crypt::Response) {
            attributes |= session_attr::ENCRYPT;
        }
        let mut cp_input = Vec::with_capacity(4 + names.len() * 34 + command.params.len());
        put_u32(&mut cp_input, command.code);
        for name in names {
            cp_input.extend_from_slice(name);
        }
        cp_input.extend_from_slice(&command.params);
        let cp_hash = hash_parts(HASH, &[&cp_input]).map_err(CryptoError::from)?;
        let hmac = crypto::hmac(
            HASH,
            &key,
            &[&cp_hash, &nonce_caller, &self.nonce_tpm, &[attributes]],
        )?;
        let auth_command = AuthCommand {
            session: self.handle,
            nonce: nonce_caller.clone(),
            attributes,
            hmac: hmac.to_vec(),
        };
        let call = AuthorizedCall {
            code: command.code,
            nonce_caller,
            key,
            encrypt_response: matches!(crypt, Crypt::Both | Crypt::Response),
        };
        Ok((auth_command, call))
    }

    /// Checks the TPM's HMAC over its response, steps the session's nonce and decrypts
    /// the first response parameter if it was encrypted.
    pub fn verify(
        &mut self,
        call: AuthorizedCall,
        response: &mut Response,
    ) -> Result<(), SessionError> {
        let auth = response
            .auths
            .first()
            .ok_or(SessionError::MissingResponseAuth)?
            .clone();
        let unchecked = self.policy && !self.auth_value_needed && auth.hmac.is_empty();
        let mut rp_input = Vec::with_capacity(8 + response.params.len());
        put_u32(&mut rp_input, 0);
        put_u32(&mut rp_input, call.code);
        rp_input.extend_from_slice(&response.params);
        let rp_hash = hash_parts(HASH, &[&rp_input]).map_err(CryptoError::from)?;
        let expected = crypto::hmac(
            HASH,
            &call.key,
            &[
                &rp_hash,
                &auth.nonce,
                &call.nonce_caller,
                &[auth.attributes],
            ],
        )?;
        if !unchecked && !constant_time_eq(&expected, &auth.hmac) {
            return Err(SessionError::ResponseHmac);
        }
        self.nonce_tpm = auth.nonce;
        if call.encrypt_response {
            let (aes_key, iv) = cfb_key(&call.key, &self.nonce_tpm, &call.nonce_caller)?;
            let size = response
                .params
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                .ok_or(SessionError::NoSizedParameter)?;
            let param = response
                .params
                .get_mut(2..2 + size)
                .ok_or(SessionError::NoSizedParameter)?;
            crypto::aes_cfb_decrypt(&aes_key, &iv, param)?;
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_zeros_are_not_part_of_an_auth_value() {
        assert_eq!(trimmed(b"pin\0\0"), b"pin");
        assert_eq!(trimmed(b"\0\0"), b"");
        assert_eq!(trimmed(b"a\0b"), b"a\0b");
    }

    #[test]
    fn comparison_needs_equal_length_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
