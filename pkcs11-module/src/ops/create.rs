//! C_CreateObject: a private key is wrapped here for the TPM and only the blob is
//! stored; a certificate is stored beside its key.

use std::path::PathBuf;
use std::sync::Arc;

use cryptoki_sys::*;
use sha2::{Digest as _, Sha256};
use tpmd_api::client::{wrap_and_import, WrapError};
use tpmd_api::{SoftwareKey, DEFAULT_SRK_HANDLE};
use zeroize::Zeroizing;

use super::daemon_error;
use crate::config::store_dir;
use crate::error::{Pkcs11Error, Result};
use crate::module::{lock, Module};
use crate::session::{template_get, template_ulong, Template};
use crate::store::cert::CertEntry;
use crate::store::files::{safe_name, unused_path, write_atomic};
use crate::store::key::{companion, to_hex, P256_PARAMS, P384_PARAMS};
use crate::store::{Entry, ObjectKind, Store};

fn required(t: &Template, ty: CK_ATTRIBUTE_TYPE) -> Result<&[u8]> {
    template_get(t, ty).ok_or(Pkcs11Error::TemplateIncomplete(ty))
}

/// A software key from the attributes of a private-key template.
fn software_key(t: &Template) -> Result<SoftwareKey> {
    match template_ulong(t, CKA_KEY_TYPE) {
        Some(CKK_RSA) => {
            let n = |ty| required(t, ty).map(rsa::BigUint::from_bytes_be);
            let key = rsa::RsaPrivateKey::from_components(
                n(CKA_MODULUS)?,
                n(CKA_PUBLIC_EXPONENT)?,
                n(CKA_PRIVATE_EXPONENT)?,
                vec![n(CKA_PRIME_1)?, n(CKA_PRIME_2)?],
            )
            .map_err(|_| Pkcs11Error::TemplateInconsistent("the RSA components do not agree"))?;
            Ok(SoftwareKey::Rsa(key))
        }
        Some(CKK_EC) => {
            let params = required(t, CKA_EC_PARAMS)?;
            let value = Zeroizing::new(required(t, CKA_VALUE)?.to_vec());
            let bad = || Pkcs11Error::AttributeValueInvalid(CKA_VALUE);
            if params == P256_PARAMS {
                let mut v = Zeroizing::new(vec![0u8; 32usize.saturating_sub(value.len())]);
                v.extend_from_slice(&value);
                p256::SecretKey::from_slice(&v)
                    .map(SoftwareKey::EcP256)
                    .map_err(|_| bad())
            } else if params == P384_PARAMS {
                let mut v = Zeroizing::new(vec![0u8; 48usize.saturating_sub(value.len())]);
                v.extend_from_slice(&value);
                p384::SecretKey::from_slice(&v)
                    .map(SoftwareKey::EcP384)
                    .map_err(|_| bad())
            } else {
                Err(Pkcs11Error::AttributeValueInvalid(CKA_EC_PARAMS))
            }
        }
        Some(_) => Err(Pkcs11Error::AttributeValueInvalid(CKA_KEY_TYPE)),
        None => Err(Pkcs11Error::TemplateIncomplete(CKA_KEY_TYPE)),
    }
}

fn label_of(t: &Template) -> Option<String> {
    template_get(t, CKA_LABEL)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .filter(|l| !l.is_empty())
}

fn store() -> Result<PathBuf> {
    store_dir().ok_or(Pkcs11Error::FunctionFailed(
        "no HOME or XDG_DATA_HOME: nowhere to store keys".into(),
    ))
}

impl Module {
    /// Stores a new key file in the module's store and returns its private and public
    /// object handles. `auth` is the key's auth value: the token PIN, or empty.
    pub fn store_key(
        &self,
        pem: &[u8],
        auth: &[u8],
        label: Option<String>,
        id: Option<&[u8]>,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let io = |e: std::io::Error| Pkcs11Error::FunctionFailed(e.to_string());
        let dir = store()?;
        let name = safe_name(label.as_deref().unwrap_or("key"));
        let path = unused_path(&dir, &name, ".tpm");
        write_atomic(&path, pem).map_err(io)?;
        if let Some(id) = id.filter(|i| !i.is_empty()) {
            write_atomic(&companion(&path, ".id"), to_hex(id).as_bytes()).map_err(io)?;
        }
        let mut store = lock(&self.store);
        if !auth.is_empty() {
            // Made with the token PIN, so it takes the token PIN.
            store.token_pin.add(Sha256::digest(pem).into(), None);
        }
        let index = store
            .add_file(&self.dirs, &path)
            .ok_or_else(|| Pkcs11Error::General("the stored key file does not read back".into()))?;
        Ok((
            Store::handle(index, ObjectKind::Private),
            Store::handle(index, ObjectKind::Public),
        ))
    }

    pub fn create_object(&self, h: CK_SESSION_HANDLE, t: &Template) -> Result<CK_OBJECT_HANDLE> {
        self.require_rw(h)?;
        match template_ulong(t, CKA_CLASS) {
            Some(CKO_PRIVATE_KEY) => self.import_private_key(t),
            Some(CKO_CERTIFICATE) => self.store_certificate(t),
            Some(_) => Err(Pkcs11Error::AttributeValueInvalid(CKA_CLASS)),
            None => Err(Pkcs11Error::TemplateIncomplete(CKA_CLASS)),
        }
    }

    fn import_private_key(&self, t: &Template) -> Result<CK_OBJECT_HANDLE> {
        if template_get(t, CKA_EXTRACTABLE).is_some_and(|v| v.first() == Some(&1)) {
            return Err(Pkcs11Error::TemplateInconsistent(
                "TPM keys are never extractable",
            ));
        }
        let key = Arc::new(software_key(t)?);
        let auth = Arc::new(lock(&self.pin).clone().unwrap_or_default());
        let key_auth = auth.clone();
        let pem = self
            .daemon
            .call(move |p| {
                let (key, auth) = (key.clone(), auth.clone());
                async move {
                    match wrap_and_import(&p, &key, &auth, DEFAULT_SRK_HANDLE).await {
                        Ok(pem) => Ok(Ok(pem)),
                        Err(WrapError::Daemon(e)) => Err(e),
                        Err(other) => Ok(Err(other.to_string())),
                    }
                }
            })
            .map_err(|e| daemon_error(e, false))?
            .map_err(Pkcs11Error::FunctionFailed)?;
        let (private, _) = self.store_key(
            pem.as_bytes(),
            &key_auth,
            label_of(t),
            template_get(t, CKA_ID),
        )?;
        Ok(private)
    }

    fn store_certificate(&self, t: &Template) -> Result<CK_OBJECT_HANDLE> {
        if template_ulong(t, CKA_CERTIFICATE_TYPE).is_some_and(|c| c != CKC_X_509) {
            return Err(Pkcs11Error::AttributeValueInvalid(CKA_CERTIFICATE_TYPE));
        }
        let der = required(t, CKA_VALUE)?;
        let dir = store()?;
        let parsed =
            CertEntry::parse(&dir, der).ok_or(Pkcs11Error::AttributeValueInvalid(CKA_VALUE))?;
        self.refresh();
        // Beside the store key it belongs to (same CKA_ID or same public key), else alone.
        let id = template_get(t, CKA_ID);
        let owner = lock(&self.store)
            .all()
            .into_iter()
            .find_map(|(_, o)| match &o.entry {
                Entry::Key(k, None)
                    if o.kind == ObjectKind::Private
                        && k.path.parent() == Some(dir.as_path())
                        && (id == Some(k.id.as_slice()) || k.spki == parsed.spki) =>
                {
                    Some(k.clone())
                }
                _ => None,
            });
        let path = match owner {
            Some(k) => companion(&k.path, ".crt"),
            None => {
                let name = label_of(t).unwrap_or_else(|| to_hex(id.unwrap_or(b"cert")));
                unused_path(&dir, &safe_name(&name), ".crt")
            }
        };
        write_atomic(&path, der).map_err(|e| Pkcs11Error::FunctionFailed(e.to_string()))?;
        self.refresh();
        let store = lock(&self.store);
        store
            .all()
            .into_iter()
            .find(|(_, o)| o.kind == ObjectKind::Certificate && o.path() == path)
            .map(|(h, _)| h)
            .ok_or_else(|| Pkcs11Error::General("the stored certificate does not read back".into()))
    }
}
