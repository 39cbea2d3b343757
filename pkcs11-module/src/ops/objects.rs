//! Finding objects, reading and changing their attributes, destroying them.

use cryptoki_sys::*;

use crate::config::DirKind;
use crate::error::{Pkcs11Error, Result};
use crate::module::{lock, Module};
use crate::session::{template_get, Template};
use crate::store::attrs::{self, Attr};
use crate::store::files::{safe_name, unused_path};
use crate::store::key::{companion, stem_path};
use crate::store::{Entry, Object, ObjectKind};

const COMPANIONS: [&str; 3] = [".crt", ".id", ".pub"];

impl Module {
    /// The object behind `handle`, if this login state may see it.
    pub fn visible_object(&self, handle: CK_OBJECT_HANDLE) -> Result<Object> {
        let obj = lock(&self.store)
            .object(handle)
            .ok_or(Pkcs11Error::ObjectHandleInvalid)?;
        if attrs::is_private(&obj) && !self.logged_in() {
            return Err(Pkcs11Error::ObjectHandleInvalid);
        }
        Ok(obj)
    }

    pub fn find_init(&self, h: CK_SESSION_HANDLE, template: &Template) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        if s.find.is_some() {
            return Err(Pkcs11Error::OperationActive);
        }
        self.refresh();
        let logged_in = self.logged_in();
        let found: Vec<CK_OBJECT_HANDLE> = lock(&self.store)
            .all()
            .into_iter()
            .filter(|(_, o)| logged_in || !attrs::is_private(o))
            .filter(|(_, o)| attrs::matches(o, template))
            .map(|(h, _)| h)
            .rev()
            .collect();
        s.find = Some(found);
        Ok(())
    }

    pub fn find(&self, h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        let pending = s
            .find
            .as_mut()
            .ok_or(Pkcs11Error::OperationNotInitialized)?;
        let mut out = Vec::new();
        while out.len() < max {
            match pending.pop() {
                Some(h) => out.push(h),
                None => break,
            }
        }
        Ok(out)
    }

    pub fn find_final(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let session = self.session(h)?;
        let mut s = lock(&session);
        s.find
            .take()
            .map(|_| ())
            .ok_or(Pkcs11Error::OperationNotInitialized)
    }

    pub fn attributes(
        &self,
        h: CK_SESSION_HANDLE,
        handle: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<Attr>> {
        self.session(h)?;
        let obj = self.visible_object(handle)?;
        Ok(types.iter().map(|t| attrs::attribute(&obj, *t)).collect())
    }

    /// Only CKA_LABEL (and CKA_ID) of objects in the module's store can change; setting
    /// any attribute to the value it has is accepted.
    pub fn set_attributes(
        &self,
        h: CK_SESSION_HANDLE,
        handle: CK_OBJECT_HANDLE,
        template: &Template,
    ) -> Result<()> {
        self.require_rw(h)?;
        let obj = self.visible_object(handle)?;
        for (t, v) in template {
            let unchanged = attrs::attribute(&obj, *t) == Attr::Value(v.clone());
            if unchanged {
                continue;
            }
            match *t {
                CKA_LABEL | CKA_ID if attrs::is_modifiable(&obj) => {}
                CKA_LABEL | CKA_ID => return Err(Pkcs11Error::AttributeReadOnly(*t)),
                _ => match attrs::attribute(&obj, *t) {
                    Attr::Invalid => return Err(Pkcs11Error::AttributeTypeInvalid(*t)),
                    _ => return Err(Pkcs11Error::AttributeReadOnly(*t)),
                },
            }
        }
        if let Some(id) = template_get(template, CKA_ID) {
            if let Some(k) = obj.key() {
                let text: String = id.iter().map(|b| format!("{b:02x}")).collect();
                crate::store::files::write_atomic(&companion(&k.path, ".id"), text.as_bytes())
                    .map_err(|e| Pkcs11Error::FunctionFailed(e.to_string()))?;
            }
        }
        if let Some(label) = template_get(template, CKA_LABEL) {
            let label = String::from_utf8_lossy(label).into_owned();
            self.relabel(&obj, &label)?;
        }
        self.refresh();
        Ok(())
    }

    /// Renames a store file (and its companions) so the label survives reloads.
    fn relabel(&self, obj: &Object, label: &str) -> Result<()> {
        let io = |e: std::io::Error| Pkcs11Error::FunctionFailed(e.to_string());
        let path = obj.path().to_path_buf();
        let dir = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
        match &obj.entry {
            Entry::Key(k, _) => {
                if k.label == label {
                    return Ok(());
                }
                let new = unused_path(&dir, &safe_name(label), ".tpm");
                let new_stem = stem_path(&new);
                for suffix in COMPANIONS {
                    let from = companion(&k.path, suffix);
                    if from.exists() {
                        let mut to = new_stem.clone().into_os_string();
                        to.push(suffix);
                        std::fs::rename(&from, &to).map_err(io)?;
                    }
                }
                std::fs::rename(&k.path, &new).map_err(io)?;
                lock(&self.store).rename(&k.path, &new);
            }
            Entry::Cert(c) => {
                let new = unused_path(&dir, &safe_name(label), ".crt");
                std::fs::rename(&c.path, &new).map_err(io)?;
                lock(&self.store).rename(&c.path, &new);
            }
        }
        Ok(())
    }

    /// Deletes a key file (both its key objects go) or a certificate file.
    pub fn destroy(&self, h: CK_SESSION_HANDLE, handle: CK_OBJECT_HANDLE) -> Result<()> {
        self.require_rw(h)?;
        let obj = self.visible_object(handle)?;
        if !attrs::is_modifiable(&obj) {
            return Err(Pkcs11Error::ActionProhibited);
        }
        let io = |e: std::io::Error| Pkcs11Error::FunctionFailed(e.to_string());
        match (&obj.entry, obj.kind) {
            (Entry::Key(k, _), ObjectKind::Private | ObjectKind::Public) => {
                if k.dir_kind != DirKind::Store {
                    return Err(Pkcs11Error::ActionProhibited);
                }
                std::fs::remove_file(&k.path).map_err(io)?;
                for suffix in [".id", ".pub"] {
                    let _ = std::fs::remove_file(companion(&k.path, suffix));
                }
                lock(&self.store).forget(&k.path);
            }
            _ => {
                let path = obj.path().to_path_buf();
                std::fs::remove_file(&path).map_err(io)?;
                lock(&self.store).forget(&path);
            }
        }
        self.refresh();
        Ok(())
    }
}
