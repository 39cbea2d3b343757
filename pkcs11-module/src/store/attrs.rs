//! The attributes of each object, as the bytes C_GetAttributeValue returns.

use cryptoki_sys::*;

use super::key::{KeyEntry, PublicParts};
use super::{Object, ObjectKind};
use crate::config::DirKind;
use crate::mechanism::list::{allowed_for, can_decrypt};
use crate::token::Family;

/// One attribute of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    Value(Vec<u8>),
    /// Exists but may not be read (private key material).
    Sensitive,
    /// Not an attribute of this object.
    Invalid,
}

pub fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub fn bool_(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

fn ulongs(v: &[CK_ULONG]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// Whether the object is hidden until C_Login (CKA_PRIVATE).
pub fn is_private(obj: &Object) -> bool {
    obj.kind == ObjectKind::Private && obj.key().is_some_and(|k| !k.empty_auth)
}

/// Whether CKA_LABEL can be changed: only for files in the module's own store.
pub fn is_modifiable(obj: &Object) -> bool {
    match obj.key() {
        Some(k) => k.dir_kind == DirKind::Store,
        None => obj
            .cert()
            .is_some_and(|c| c.path.parent() == crate::config::store_dir().as_deref()),
    }
}

fn common(obj: &Object, t: CK_ATTRIBUTE_TYPE, label: &str, id: &[u8]) -> Option<Attr> {
    let v = match t {
        CKA_TOKEN => bool_(true),
        CKA_PRIVATE => bool_(is_private(obj)),
        CKA_MODIFIABLE => bool_(is_modifiable(obj)),
        CKA_COPYABLE => bool_(false),
        CKA_DESTROYABLE => bool_(is_modifiable(obj)),
        CKA_LABEL => label.as_bytes().to_vec(),
        CKA_ID => id.to_vec(),
        CKA_START_DATE | CKA_END_DATE => Vec::new(),
        _ => return None,
    };
    Some(Attr::Value(v))
}

fn key_common(family: Family, key: &KeyEntry, t: CK_ATTRIBUTE_TYPE) -> Option<Attr> {
    let v = match t {
        CKA_KEY_TYPE => ulong(match key.parts {
            PublicParts::Rsa { .. } => CKK_RSA,
            PublicParts::Ec { .. } => CKK_EC,
        }),
        CKA_DERIVE => bool_(false),
        CKA_LOCAL => bool_(false),
        CKA_KEY_GEN_MECHANISM => ulong(CK_UNAVAILABLE_INFORMATION),
        CKA_ALLOWED_MECHANISMS => ulongs(&allowed_for(family, key)),
        CKA_SUBJECT => Vec::new(),
        CKA_PUBLIC_KEY_INFO => key.spki.clone(),
        _ => return public_values(&key.parts, t).map(Attr::Value),
    };
    Some(Attr::Value(v))
}

fn public_values(parts: &PublicParts, t: CK_ATTRIBUTE_TYPE) -> Option<Vec<u8>> {
    match (parts, t) {
        (PublicParts::Rsa { modulus, .. }, CKA_MODULUS) => Some(modulus.clone()),
        (PublicParts::Rsa { modulus, .. }, CKA_MODULUS_BITS) => {
            Some(ulong((modulus.len() * 8) as CK_ULONG))
        }
        (PublicParts::Rsa { exponent, .. }, CKA_PUBLIC_EXPONENT) => Some(exponent.clone()),
        (PublicParts::Ec { params, .. }, CKA_EC_PARAMS) => Some(params.clone()),
        (PublicParts::Ec { point, .. }, CKA_EC_POINT) => Some(point.clone()),
        _ => None,
    }
}

fn private_key(obj: &Object, key: &KeyEntry, t: CK_ATTRIBUTE_TYPE) -> Attr {
    let v = match t {
        CKA_CLASS => ulong(CKO_PRIVATE_KEY),
        CKA_SENSITIVE | CKA_ALWAYS_SENSITIVE | CKA_NEVER_EXTRACTABLE => bool_(true),
        CKA_EXTRACTABLE | CKA_WRAP_WITH_TRUSTED => bool_(false),
        // A key with its own PIN takes it for every use (CKU_CONTEXT_SPECIFIC).
        CKA_ALWAYS_AUTHENTICATE => bool_(!key.empty_auth && !obj.shares_token_pin),
        CKA_SIGN => bool_(key.can_sign),
        CKA_SIGN_RECOVER | CKA_UNWRAP => bool_(false),
        CKA_DECRYPT => bool_(can_decrypt(obj.family, key)),
        CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1 | CKA_EXPONENT_2
        | CKA_COEFFICIENT
            if matches!(key.parts, PublicParts::Rsa { .. }) =>
        {
            return Attr::Sensitive
        }
        CKA_VALUE if matches!(key.parts, PublicParts::Ec { .. }) => return Attr::Sensitive,
        _ => return key_common(obj.family, key, t).unwrap_or(Attr::Invalid),
    };
    Attr::Value(v)
}

fn public_key(obj: &Object, key: &KeyEntry, t: CK_ATTRIBUTE_TYPE) -> Attr {
    let v = match t {
        CKA_CLASS => ulong(CKO_PUBLIC_KEY),
        // Done here in software with the public key, for what the private key can undo.
        CKA_VERIFY => bool_(key.can_sign),
        CKA_ENCRYPT => bool_(can_decrypt(obj.family, key)),
        CKA_VERIFY_RECOVER | CKA_WRAP | CKA_TRUSTED => bool_(false),
        _ => return key_common(obj.family, key, t).unwrap_or(Attr::Invalid),
    };
    Attr::Value(v)
}

fn certificate(obj: &Object, t: CK_ATTRIBUTE_TYPE) -> Attr {
    let Some(c) = obj.cert() else {
        return Attr::Invalid;
    };
    let v = match t {
        CKA_CLASS => ulong(CKO_CERTIFICATE),
        CKA_CERTIFICATE_TYPE => ulong(CKC_X_509),
        CKA_TRUSTED => bool_(false),
        CKA_CERTIFICATE_CATEGORY => ulong(0),
        CKA_SUBJECT => c.subject.clone(),
        CKA_ISSUER => c.issuer.clone(),
        CKA_SERIAL_NUMBER => c.serial.clone(),
        CKA_VALUE => c.der.clone(),
        CKA_PUBLIC_KEY_INFO => c.spki.clone(),
        CKA_URL | CKA_HASH_OF_SUBJECT_PUBLIC_KEY | CKA_HASH_OF_ISSUER_PUBLIC_KEY => Vec::new(),
        CKA_JAVA_MIDP_SECURITY_DOMAIN => ulong(0),
        _ => return Attr::Invalid,
    };
    Attr::Value(v)
}

/// The value of attribute `t` of `obj`.
pub fn attribute(obj: &Object, t: CK_ATTRIBUTE_TYPE) -> Attr {
    let (label, id) = match (obj.key(), obj.cert()) {
        (Some(k), _) => (k.label.as_str(), k.id.as_slice()),
        (None, Some(c)) => (c.label.as_str(), c.id.as_slice()),
        (None, None) => return Attr::Invalid,
    };
    if let Some(a) = common(obj, t, label, id) {
        return a;
    }
    match (obj.kind, obj.key()) {
        (ObjectKind::Private, Some(k)) => private_key(obj, k, t),
        (ObjectKind::Public, Some(k)) => public_key(obj, k, t),
        _ => certificate(obj, t),
    }
}

/// Whether `obj` has every attribute in `template` with exactly that value.
pub fn matches(obj: &Object, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
    template.iter().all(|(t, want)| match attribute(obj, *t) {
        Attr::Value(v) => &v == want,
        _ => false,
    })
}
