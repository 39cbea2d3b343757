//! Object management: find, read and change attributes, create, destroy.

use cryptoki_sys::*;
use zeroize::Zeroize;

use super::{attributes, guard, module, out, template};
use crate::error::{Pkcs11Error, Result};
use crate::store::attrs::Attr;

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        // SAFETY: forwarded PKCS#11 contract.
        let mut t = unsafe { template(pTemplate, ulCount)? };
        // SAFETY: phObject points to a CK_OBJECT_HANDLE (checked for NULL).
        let handle_out = unsafe { out(phObject)? };
        let created = m.create_object(hSession, &t);
        // The template of a private key holds its secret values.
        for (_, value) in t.iter_mut() {
            value.zeroize();
        }
        *handle_out = created?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| module()?.destroy(hSession, hObject))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pulSize: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        m.visible_object(hObject)?;
        // SAFETY: pulSize points to a CK_ULONG (checked for NULL).
        *unsafe { out(pulSize)? } = CK_UNAVAILABLE_INFORMATION;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        // SAFETY: forwarded PKCS#11 contract.
        let attrs = unsafe { attributes(pTemplate, ulCount)? };
        let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
        let values = m.attributes(hSession, hObject, &types)?;
        let mut result: Result<()> = Ok(());
        for (a, v) in attrs.iter_mut().zip(values) {
            match v {
                Attr::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Pkcs11Error::AttributeSensitive(a.type_));
                }
                Attr::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Pkcs11Error::AttributeTypeInvalid(a.type_));
                }
                Attr::Value(bytes) if a.pValue.is_null() => {
                    a.ulValueLen = bytes.len() as CK_ULONG;
                }
                Attr::Value(bytes) if (a.ulValueLen as usize) < bytes.len() => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(Pkcs11Error::BufferTooSmall(bytes.len()));
                }
                Attr::Value(bytes) => {
                    // SAFETY: pValue holds ulValueLen >= bytes.len() bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            bytes.as_ptr(),
                            a.pValue as *mut u8,
                            bytes.len(),
                        )
                    };
                    a.ulValueLen = bytes.len() as CK_ULONG;
                }
            }
        }
        result
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        // SAFETY: forwarded PKCS#11 contract.
        let t = unsafe { template(pTemplate, ulCount)? };
        m.set_attributes(hSession, hObject, &t)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        // SAFETY: forwarded PKCS#11 contract.
        let t = unsafe { template(pTemplate, ulCount)? };
        m.find_init(hSession, &t)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    hSession: CK_SESSION_HANDLE,
    phObject: *mut CK_OBJECT_HANDLE,
    ulMaxObjectCount: CK_ULONG,
    pulObjectCount: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        // SAFETY: pulObjectCount points to a CK_ULONG (checked for NULL).
        let count = unsafe { out(pulObjectCount)? };
        if phObject.is_null() && ulMaxObjectCount > 0 {
            return Err(Pkcs11Error::ArgumentsBad("NULL handle array"));
        }
        let found = m.find(hSession, ulMaxObjectCount as usize)?;
        for (i, h) in found.iter().enumerate() {
            // SAFETY: the caller's array holds ulMaxObjectCount >= found.len() handles.
            unsafe { phObject.add(i).write(*h) };
        }
        *count = found.len() as CK_ULONG;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module()?.find_final(hSession))
}
