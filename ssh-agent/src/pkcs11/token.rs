//! Inside the helper: the provider loaded with cryptoki, one session per token (logged in
//! with the PIN when the token asks for one), its RSA and ECDSA keys found through their
//! public key objects, and signatures with CKM_RSA_PKCS over a DigestInfo or CKM_ECDSA
//! over the digest, which the helper computes as the agent does for the TPM.

use std::path::Path;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use ssh_key::public::{EcdsaPublicKey, KeyData, RsaPublicKey};
use ssh_key::Mpint;

use crate::sign::{self, Signed};

/// DER of the named curves' object identifiers (CKA_EC_PARAMS).
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];

pub struct TokenKey {
    pub public: KeyData,
    pub label: String,
    session: usize,
    private: ObjectHandle,
}

pub struct Token {
    _library: Pkcs11,
    sessions: Vec<Session>,
    pub keys: Vec<TokenKey>,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// CKA_EC_POINT is a DER OCTET STRING around the point (some tokens give it bare).
fn unwrap_octet_string(value: &[u8]) -> &[u8] {
    let [0x04, first, rest @ ..] = value else {
        return value;
    };
    let (len, body) = match *first {
        n if n < 0x80 => (n as usize, rest),
        0x81 => match rest.split_first() {
            Some((n, body)) => (*n as usize, body),
            None => return value,
        },
        _ => return value,
    };
    if body.len() == len {
        body
    } else {
        value
    }
}

fn public_key(session: &Session, object: ObjectHandle) -> Result<Option<KeyData>, String> {
    let attributes = session
        .get_attributes(
            object,
            &[
                AttributeType::KeyType,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcParams,
                AttributeType::EcPoint,
            ],
        )
        .map_err(|e| err("reading a key's attributes", e))?;
    let mut kind = None;
    let (mut n, mut e, mut params, mut point) = (None, None, None, None);
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(k) => kind = Some(k),
            Attribute::Modulus(v) => n = Some(v),
            Attribute::PublicExponent(v) => e = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    Ok(match (kind, n, e, params, point) {
        (Some(KeyType::RSA), Some(n), Some(e), _, _) => {
            let mpint = |v: &[u8]| Mpint::from_positive_bytes(v).map_err(|x| err("RSA key", x));
            Some(KeyData::Rsa(RsaPublicKey {
                e: mpint(&e)?,
                n: mpint(&n)?,
            }))
        }
        (Some(KeyType::EC), _, _, Some(params), Some(point))
            if [P256_OID, P384_OID, P521_OID].contains(&params.as_slice()) =>
        {
            let point = unwrap_octet_string(&point);
            Some(KeyData::Ecdsa(
                EcdsaPublicKey::from_sec1_bytes(point).map_err(|e| err("EC public key", e))?,
            ))
        }
        _ => None,
    })
}

impl Token {
    pub fn load(provider: &Path, pin: &str) -> Result<Token, String> {
        let library = Pkcs11::new(provider).map_err(|e| err("cannot load the provider", e))?;
        library
            .initialize(CInitializeArgs::OsThreads)
            .map_err(|e| err("C_Initialize failed", e))?;
        let slots = library
            .get_slots_with_initialized_token()
            .map_err(|e| err("cannot list the provider's tokens", e))?;
        let mut token = Token {
            _library: library.clone(),
            sessions: Vec::new(),
            keys: Vec::new(),
        };
        for slot in slots {
            let session = library
                .open_ro_session(slot)
                .map_err(|e| err("cannot open a session", e))?;
            let info = library
                .get_token_info(slot)
                .map_err(|e| err("cannot read the token's information", e))?;
            if info.login_required() {
                if pin.is_empty() {
                    return Err(format!(
                        "token \"{}\" needs a PIN and none was given",
                        info.label()
                    ));
                }
                session
                    .login(UserType::User, Some(&AuthPin::new(pin.to_string())))
                    .map_err(|e| err(&format!("login to token \"{}\"", info.label()), e))?;
            }
            let index = token.sessions.len();
            token.find_keys(&session, index)?;
            token.sessions.push(session);
        }
        if token.keys.is_empty() {
            return Err("the provider's tokens hold no RSA or ECDSA signing key".into());
        }
        Ok(token)
    }

    fn find_keys(&mut self, session: &Session, index: usize) -> Result<(), String> {
        let publics = session
            .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)])
            .map_err(|e| err("cannot search the token", e))?;
        for object in publics {
            let Some(public) = public_key(session, object)? else {
                continue;
            };
            let id = session
                .get_attributes(object, &[AttributeType::Id, AttributeType::Label])
                .map_err(|e| err("reading a key's id", e))?;
            let (mut key_id, mut label) = (None, String::new());
            for attribute in id {
                match attribute {
                    Attribute::Id(v) => key_id = Some(v),
                    Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
                    _ => {}
                }
            }
            let Some(key_id) = key_id else {
                continue;
            };
            let private = session
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Id(key_id),
                ])
                .map_err(|e| err("cannot search the token", e))?;
            let Some(private) = private.first().copied() else {
                continue;
            };
            if self.keys.iter().any(|k| k.public == public) {
                continue;
            }
            self.keys.push(TokenKey {
                public,
                label,
                session: index,
                private,
            });
        }
        Ok(())
    }

    pub fn sign(&self, public: &KeyData, data: &[u8], flags: u32) -> Result<Signed, String> {
        let key = self
            .keys
            .iter()
            .find(|k| &k.public == public)
            .ok_or("the provider holds no such key")?;
        let session = &self.sessions[key.session];
        let plan = sign::plan(public, data, flags).map_err(|e| e.to_string())?;
        let signature = match public {
            KeyData::Rsa(_) => {
                let input = sign::digest_info(&plan).ok_or("no DigestInfo for this hash")?;
                session.sign(&Mechanism::RsaPkcs, key.private, &input)
            }
            _ => session.sign(&Mechanism::Ecdsa, key.private, &plan.digest),
        }
        .map_err(|e| err("the token refused to sign", e))?;
        sign::finish(&plan, signature).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::unwrap_octet_string;

    #[test]
    fn ec_points_are_unwrapped_from_der_or_taken_bare() {
        let point = [4u8; 65];
        let mut der = vec![0x04, 65];
        der.extend_from_slice(&point);
        assert_eq!(unwrap_octet_string(&der), &point);
        let big = [4u8; 133];
        let mut der = vec![0x04, 0x81, 133];
        der.extend_from_slice(&big);
        assert_eq!(unwrap_octet_string(&der), &big);
        assert_eq!(unwrap_octet_string(&point), &point);
    }
}
