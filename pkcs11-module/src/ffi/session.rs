//! Session management and login.

use std::sync::{Arc, Mutex};

use cryptoki_sys::*;

use super::{bytes, check_slot, guard, module, out, SLOT_ID};
use crate::error::Pkcs11Error;
use crate::module::lock;
use crate::session::Session;

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slotID: CK_SLOT_ID,
    flags: CK_FLAGS,
    _pApplication: *mut std::ffi::c_void,
    _Notify: CK_NOTIFY,
    phSession: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        check_slot(slotID)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Pkcs11Error::SessionParallelNotSupported);
        }
        // SAFETY: phSession points to a CK_SESSION_HANDLE (checked for NULL).
        let handle_out = unsafe { out(phSession)? };
        let h = m.new_session_handle();
        let rw = flags & CKF_RW_SESSION != 0;
        lock(&m.sessions).insert(h, (rw, Arc::new(Mutex::new(Session::default()))));
        m.refresh();
        *handle_out = h;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        let m = module()?;
        let mut sessions = lock(&m.sessions);
        sessions
            .remove(&hSession)
            .ok_or(Pkcs11Error::SessionHandleInvalid)?;
        if sessions.is_empty() {
            // Closing the last session logs the user out (PKCS#11 5.6).
            *lock(&m.pin) = None;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slotID: CK_SLOT_ID) -> CK_RV {
    guard(|| {
        let m = module()?;
        check_slot(slotID)?;
        lock(&m.sessions).clear();
        *lock(&m.pin) = None;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    hSession: CK_SESSION_HANDLE,
    pInfo: *mut CK_SESSION_INFO,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        let rw = lock(&m.sessions)
            .get(&hSession)
            .map(|(rw, _)| *rw)
            .ok_or(Pkcs11Error::SessionHandleInvalid)?;
        // SAFETY: pInfo points to a CK_SESSION_INFO (checked for NULL).
        let info = unsafe { out(pInfo)? };
        let state = match (rw, m.logged_in()) {
            (false, false) => CKS_RO_PUBLIC_SESSION,
            (false, true) => CKS_RO_USER_FUNCTIONS,
            (true, false) => CKS_RW_PUBLIC_SESSION,
            (true, true) => CKS_RW_USER_FUNCTIONS,
        };
        *info = CK_SESSION_INFO {
            slotID: SLOT_ID,
            state,
            flags: CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: pPin holds ulPinLen bytes.
        let pin = unsafe { bytes(pPin, ulPinLen)? };
        m.login(hSession, userType, pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        m.logout()
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    hSession: CK_SESSION_HANDLE,
    pOldPin: *mut CK_UTF8CHAR,
    ulOldLen: CK_ULONG,
    pNewPin: *mut CK_UTF8CHAR,
    ulNewLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: each PIN holds its length in bytes.
        let (old, new) = unsafe { (bytes(pOldPin, ulOldLen)?, bytes(pNewPin, ulNewLen)?) };
        m.set_pin(hSession, old, new)
    })
}
