//! Signing: C_SignInit, C_Sign, C_SignUpdate, C_SignFinal.

use cryptoki_sys::*;

use super::{bytes, finish_with_output, guard, module, start_or_cancel};

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: pMechanism is NULL or points to a CK_MECHANISM (the PKCS#11 contract).
    unsafe {
        start_or_cancel(
            hSession,
            pMechanism,
            |m| {
                m.sign_abort(hSession);
                Ok(())
            },
            |m, mech| m.sign_init(hSession, mech, hKey),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: pData holds ulDataLen bytes; the output pair follows the PKCS#11 rules.
        unsafe {
            finish_with_output(
                Some((pData.cast_const(), ulDataLen)),
                pSignature,
                pulSignatureLen,
                || m.sign_abort(hSession),
                |data, room| m.sign(hSession, data, room),
            )
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        // SAFETY: pPart holds ulPartLen bytes.
        match unsafe { bytes(pPart, ulPartLen) } {
            Ok(part) => m.sign_update(hSession, part),
            Err(e) => {
                m.sign_abort(hSession);
                Err(e)
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: the output pair follows the PKCS#11 rules.
        unsafe {
            finish_with_output(
                None,
                pSignature,
                pulSignatureLen,
                || m.sign_abort(hSession),
                |data, room| m.sign(hSession, data, room),
            )
        }
    })
}
