//! Verification: C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal.

use cryptoki_sys::*;

use super::{bytes, guard, module, start_or_cancel};

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
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
                m.verify_abort(hSession);
                Ok(())
            },
            |m, mech| m.verify_init(hSession, mech, hKey),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: pData and pSignature hold their lengths in bytes.
        let args = unsafe { (bytes(pData, ulDataLen), bytes(pSignature, ulSignatureLen)) };
        match args {
            (Ok(data), Ok(signature)) => m.verify(hSession, Some(data), signature),
            (Err(e), _) | (_, Err(e)) => {
                m.verify_abort(hSession);
                Err(e)
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        // SAFETY: pPart holds ulPartLen bytes.
        match unsafe { bytes(pPart, ulPartLen) } {
            Ok(part) => m.verify_update(hSession, part),
            Err(e) => {
                m.verify_abort(hSession);
                Err(e)
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: pSignature holds ulSignatureLen bytes.
        match unsafe { bytes(pSignature, ulSignatureLen) } {
            Ok(signature) => m.verify(hSession, None, signature),
            Err(e) => {
                m.verify_abort(hSession);
                Err(e)
            }
        }
    })
}
