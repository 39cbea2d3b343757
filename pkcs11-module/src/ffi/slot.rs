//! Slot and token management: the one slot, its token, its mechanisms.

use cryptoki_sys::*;

use super::{check_slot, guard, module, out, pad, SLOT_ID};
use crate::error::{Pkcs11Error, Result};
use crate::mechanism;
use crate::module::lock;

/// Writes a list the PKCS#11 way: NULL buffer asks for the count.
unsafe fn write_list<T: Copy>(buf: *mut T, count: *mut CK_ULONG, items: &[T]) -> Result<()> {
    // SAFETY: count points to a CK_ULONG (checked for NULL).
    let count = unsafe { out(count)? };
    if buf.is_null() {
        *count = items.len() as CK_ULONG;
        return Ok(());
    }
    if (*count as usize) < items.len() {
        *count = items.len() as CK_ULONG;
        return Err(Pkcs11Error::BufferTooSmall(items.len()));
    }
    // SAFETY: the caller's array holds *count >= items.len() elements.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), buf, items.len()) };
    *count = items.len() as CK_ULONG;
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    _tokenPresent: CK_BBOOL,
    pSlotList: *mut CK_SLOT_ID,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        module()?;
        // SAFETY: forwarded PKCS#11 contract.
        unsafe { write_list(pSlotList, pulCount, &[SLOT_ID]) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        module()?;
        check_slot(slotID)?;
        // SAFETY: pInfo points to a CK_SLOT_INFO (checked for NULL).
        *unsafe { out(pInfo)? } = CK_SLOT_INFO {
            slotDescription: pad("tpmd (TPM keys over D-Bus)"),
            manufacturerID: pad("tpmd"),
            flags: CKF_TOKEN_PRESENT | CKF_HW_SLOT,
            hardwareVersion: CK_VERSION { major: 0, minor: 0 },
            firmwareVersion: CK_VERSION { major: 0, minor: 1 },
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        let m = module()?;
        check_slot(slotID)?;
        // SAFETY: pInfo points to a CK_TOKEN_INFO (checked for NULL).
        let info = unsafe { out(pInfo)? };
        m.refresh();
        let id = m.identity();
        let mut flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
        if lock(&m.store).any_key_with_auth() {
            flags |= CKF_LOGIN_REQUIRED;
        }
        let sessions = lock(&m.sessions);
        let rw = sessions.values().filter(|(rw, _)| *rw).count();
        *info = CK_TOKEN_INFO {
            label: pad(&id.label),
            manufacturerID: pad(&id.manufacturer),
            model: pad(&id.model),
            serialNumber: pad(&id.serial),
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: sessions.len() as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: rw as CK_ULONG,
            ulMaxPinLen: 128,
            ulMinPinLen: 0,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION { major: 2, minor: 0 },
            firmwareVersion: CK_VERSION {
                major: id.firmware.0,
                minor: id.firmware.1,
            },
            utcTime: [b' '; 16],
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slotID: CK_SLOT_ID,
    pMechanismList: *mut CK_MECHANISM_TYPE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        check_slot(slotID)?;
        let all: Vec<CK_MECHANISM_TYPE> = mechanism::mechanisms(m.family())
            .iter()
            .map(|e| e.0)
            .collect();
        // SAFETY: forwarded PKCS#11 contract.
        unsafe { write_list(pMechanismList, pulCount, &all) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slotID: CK_SLOT_ID,
    type_: CK_MECHANISM_TYPE,
    pInfo: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        check_slot(slotID)?;
        let info = mechanism::info(m.family(), type_).ok_or(Pkcs11Error::MechanismInvalid)?;
        // SAFETY: pInfo points to a CK_MECHANISM_INFO (checked for NULL).
        *unsafe { out(pInfo)? } = info;
        Ok(())
    })
}
