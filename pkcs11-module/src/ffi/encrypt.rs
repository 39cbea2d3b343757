//! Encryption: C_EncryptInit and single-part C_Encrypt (RSA is single-part only).

use cryptoki_sys::*;

use super::{finish_with_output, guard, module, start_or_cancel};

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
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
                m.encrypt_abort(hSession);
                Ok(())
            },
            |m, mech| m.encrypt_init(hSession, mech, hKey),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_Encrypt(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pEncryptedData: *mut CK_BYTE,
    pulEncryptedDataLen: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: pData holds ulDataLen bytes; the output pair follows the PKCS#11 rules.
        unsafe {
            finish_with_output(
                Some((pData.cast_const(), ulDataLen)),
                pEncryptedData,
                pulEncryptedDataLen,
                || m.encrypt_abort(hSession),
                |data, room| m.encrypt(hSession, data.unwrap_or_default(), room),
            )
        }
    })
}
