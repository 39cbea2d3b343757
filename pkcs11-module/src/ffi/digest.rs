//! Message digesting: C_DigestInit, C_Digest, C_DigestUpdate, C_DigestFinal.

use cryptoki_sys::*;

use super::{bytes, finish_with_output, guard, module, start_or_cancel};
use crate::error::Pkcs11Error;

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
) -> CK_RV {
    // SAFETY: pMechanism is NULL or points to a CK_MECHANISM (the PKCS#11 contract).
    unsafe {
        start_or_cancel(
            hSession,
            pMechanism,
            |m| {
                m.digest_abort(hSession);
                Ok(())
            },
            |m, mech| m.digest_init(hSession, mech),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: pData holds ulDataLen bytes; the output pair follows the PKCS#11 rules.
        unsafe {
            finish_with_output(
                Some((pData.cast_const(), ulDataLen)),
                pDigest,
                pulDigestLen,
                || m.digest_abort(hSession),
                |data, room| m.digest(hSession, data, room),
            )
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        // SAFETY: pPart holds ulPartLen bytes.
        match unsafe { bytes(pPart, ulPartLen) } {
            Ok(part) => m.digest_update(hSession, part),
            Err(e) => {
                m.digest_abort(hSession);
                Err(e)
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        let _ = hKey;
        // Key values never leave the TPM, so no key can be digested.
        m.digest_abort(hSession);
        Err(Pkcs11Error::KeyIndigestible)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    hSession: CK_SESSION_HANDLE,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: the output pair follows the PKCS#11 rules.
        unsafe {
            finish_with_output(
                None,
                pDigest,
                pulDigestLen,
                || m.digest_abort(hSession),
                |data, room| m.digest(hSession, data, room),
            )
        }
    })
}
