//! Decryption: C_DecryptInit and single-part C_Decrypt (RSA is single-part only).

use cryptoki_sys::*;

use super::{finish_with_output, guard, module, start_or_cancel};
use crate::module::lock;

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
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
                lock(&*m.session(hSession)?).decrypt = None;
                Ok(())
            },
            |m, mech| m.decrypt_init(hSession, mech, hKey),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Decrypt(
    hSession: CK_SESSION_HANDLE,
    pEncryptedData: *mut CK_BYTE,
    ulEncryptedDataLen: CK_ULONG,
    pData: *mut CK_BYTE,
    pulDataLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        let session = m.session(hSession)?;
        // SAFETY: the input holds ulEncryptedDataLen bytes; the output pair follows the rules.
        unsafe {
            finish_with_output(
                Some((pEncryptedData.cast_const(), ulEncryptedDataLen)),
                pData,
                pulDataLen,
                || lock(&session).decrypt = None,
                |ct, room| m.decrypt(hSession, ct.unwrap_or_default(), room),
            )
        }
    })
}
