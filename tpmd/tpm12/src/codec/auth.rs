//! HMAC-SHA1 authorization (TPM 1.2 Part 1, 11.2): the command and response HMACs of
//! OIAP and OSAP sessions, the OSAP shared secret, ADIP encryption of new auth values,
//! and the well-known secrets.

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha1 = Hmac<Sha1>;

/// A 20-byte nonce (TPM_NONCE).
pub type Nonce = [u8; 20];

/// A 20-byte authorization value (TPM_AUTHDATA / TPM_SECRET). Zeroized on drop and
/// never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct AuthSecret([u8; 20]);

impl std::fmt::Debug for AuthSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthSecret(..)")
    }
}

/// Which well-known secret convention a TPM was set up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WellKnown {
    /// TSS_WELL_KNOWN_SECRET: 20 zero bytes (`tpm_takeownership -z`, trousers).
    Zeros,
    /// SHA-1 of 20 zero bytes, as `swtpm_setup --srk-well-known --owner-well-known` writes it.
    Sha1OfZeros,
}

impl WellKnown {
    pub const ALL: [WellKnown; 2] = [WellKnown::Zeros, WellKnown::Sha1OfZeros];

    pub fn secret(self) -> AuthSecret {
        match self {
            WellKnown::Zeros => AuthSecret([0; 20]),
            WellKnown::Sha1OfZeros => AuthSecret(Sha1::digest([0u8; 20]).into()),
        }
    }
}

impl AuthSecret {
    pub fn from_raw(bytes: [u8; 20]) -> AuthSecret {
        AuthSecret(bytes)
    }

    /// The TSS plain-text convention: the auth value is SHA-1 of the password.
    pub fn from_password(password: &[u8]) -> AuthSecret {
        AuthSecret(Sha1::digest(password).into())
    }

    /// An empty password means the well-known secret (20 zero bytes); anything else is
    /// hashed as a TSS plain-text secret.
    pub fn from_password_or_well_known(password: &[u8]) -> AuthSecret {
        if password.is_empty() {
            WellKnown::Zeros.secret()
        } else {
            AuthSecret::from_password(password)
        }
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha1::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 20],
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-1 over the concatenation of `parts`: inParamDigest / outParamDigest.
pub fn sha1_parts(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// The authorization HMAC of a command or a response:
/// HMAC(key, paramDigest || nonceEven || nonceOdd || continueAuthSession).
pub fn auth_hmac(
    key: &AuthSecret,
    param_digest: &[u8; 20],
    nonce_even: &Nonce,
    nonce_odd: &Nonce,
    continue_session: bool,
) -> [u8; 20] {
    hmac(
        &key.0,
        &[
            param_digest,
            nonce_even,
            nonce_odd,
            &[u8::from(continue_session)],
        ],
    )
}

/// Constant-time comparison of two HMACs.
pub fn hmac_eq(a: &[u8; 20], b: &[u8; 20]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// OSAP shared secret: HMAC(entityAuth, nonceEvenOSAP || nonceOddOSAP).
pub fn osap_shared_secret(
    entity_auth: &AuthSecret,
    nonce_even_osap: &Nonce,
    nonce_odd_osap: &Nonce,
) -> AuthSecret {
    AuthSecret(hmac(&entity_auth.0, &[nonce_even_osap, nonce_odd_osap]))
}

/// ADIP (XOR) encryption of a new auth value: newAuth XOR SHA-1(sharedSecret || nonce).
/// The nonce is the session's nonceEven for the first value and nonceOdd for the second.
pub fn adip_encrypt(shared_secret: &AuthSecret, nonce: &Nonce, new_auth: &AuthSecret) -> [u8; 20] {
    let pad = sha1_parts(&[&shared_secret.0, nonce]);
    let mut out = [0u8; 20];
    for (o, (a, p)) in out.iter_mut().zip(new_auth.0.iter().zip(pad)) {
        *o = a ^ p;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn well_known_secrets() {
        assert_eq!(WellKnown::Zeros.secret().as_bytes(), &[0; 20]);
        // SHA-1 of 20 zero bytes.
        assert_eq!(
            WellKnown::Sha1OfZeros.secret().as_bytes().to_vec(),
            hex("6768033e216468247bd031a0a2d9876d79818f8f")
        );
        assert_eq!(
            AuthSecret::from_password_or_well_known(b"").as_bytes(),
            &[0; 20]
        );
        // SHA-1("abc"), FIPS 180 example.
        assert_eq!(
            AuthSecret::from_password(b"abc").as_bytes().to_vec(),
            hex("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
    }

    #[test]
    fn auth_hmac_matches_rfc2202_layout() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for nothing?".
        // Split the 28-byte message over the HMAC's fields to check they are concatenated
        // in order: 20 bytes as the digest, then 8 more across the nonces and flag.
        let mut key = [0u8; 20];
        key[..4].copy_from_slice(b"Jefe");
        // A 20-byte key padded with zeros is the same HMAC key as "Jefe" (HMAC pads keys).
        let msg = b"what do ya want for nothing?";
        let got = hmac(&key, &[&msg[..20], &msg[20..]]);
        assert_eq!(
            got.to_vec(),
            hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
    }

    #[test]
    fn auth_hmac_field_order() {
        let key = AuthSecret([7; 20]);
        let digest = [1; 20];
        let even = [2; 20];
        let odd = [3; 20];
        let got = auth_hmac(&key, &digest, &even, &odd, true);
        let mut msg = Vec::new();
        msg.extend([1u8; 20]);
        msg.extend([2u8; 20]);
        msg.extend([3u8; 20]);
        msg.push(1);
        assert_eq!(got, hmac(&[7; 20], &[&msg]));
        assert_ne!(got, auth_hmac(&key, &digest, &even, &odd, false));
    }

    #[test]
    fn adip_is_an_involution() {
        let shared = AuthSecret([5; 20]);
        let nonce = [6; 20];
        let secret = AuthSecret([9; 20]);
        let enc = adip_encrypt(&shared, &nonce, &secret);
        assert_ne!(&enc, secret.as_bytes());
        assert_eq!(
            &adip_encrypt(&shared, &nonce, &AuthSecret(enc)),
            secret.as_bytes()
        );
    }

    #[test]
    fn osap_secret_is_hmac_of_nonces() {
        let auth = AuthSecret([0; 20]);
        let s = osap_shared_secret(&auth, &[1; 20], &[2; 20]);
        let mut msg = vec![1u8; 20];
        msg.extend([2u8; 20]);
        assert_eq!(s.as_bytes(), &hmac(&[0; 20], &[&msg]));
    }
}
