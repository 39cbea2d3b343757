//! Functions this token does not offer: they check that the module is initialized and
//! return the spec's "not supported" value. (RSA encryption is single-part, so
//! C_EncryptUpdate and C_EncryptFinal are among them.)

use std::ffi::c_void;

use cryptoki_sys::*;

use super::{guard, module};
use crate::error::Pkcs11Error;

macro_rules! not_supported {
    ($($name:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            $(let _ = $arg;)*
            guard(|| {
                module()?;
                Err(Pkcs11Error::FunctionNotSupported)
            })
        }
    )*};
}

type H = CK_SESSION_HANDLE;
type O = CK_OBJECT_HANDLE;
type B = *mut CK_BYTE;
type L = CK_ULONG;
type PL = *mut CK_ULONG;
type M = *mut CK_MECHANISM;
type A = *mut CK_ATTRIBUTE;
type P = *mut c_void;

not_supported! {
    C_InitToken(a: CK_SLOT_ID, b: *mut CK_UTF8CHAR, c: L, d: *mut CK_UTF8CHAR);
    C_InitPIN(a: H, b: *mut CK_UTF8CHAR, c: L);
    C_GetOperationState(a: H, b: B, c: PL);
    C_SetOperationState(a: H, b: B, c: L, d: O, e: O);
    C_CopyObject(a: H, b: O, c: A, d: L, e: *mut O);
    C_EncryptUpdate(a: H, b: B, c: L, d: B, e: PL);
    C_EncryptFinal(a: H, b: B, c: PL);
    C_DecryptUpdate(a: H, b: B, c: L, d: B, e: PL);
    C_DecryptFinal(a: H, b: B, c: PL);
    C_SignRecoverInit(a: H, b: M, c: O);
    C_SignRecover(a: H, b: B, c: L, d: B, e: PL);
    C_VerifyRecoverInit(a: H, b: M, c: O);
    C_VerifyRecover(a: H, b: B, c: L, d: B, e: PL);
    C_DigestEncryptUpdate(a: H, b: B, c: L, d: B, e: PL);
    C_DecryptDigestUpdate(a: H, b: B, c: L, d: B, e: PL);
    C_SignEncryptUpdate(a: H, b: B, c: L, d: B, e: PL);
    C_DecryptVerifyUpdate(a: H, b: B, c: L, d: B, e: PL);
    C_GenerateKey(a: H, b: M, c: A, d: L, e: *mut O);
    C_WrapKey(a: H, b: M, c: O, d: O, e: B, f: PL);
    C_UnwrapKey(a: H, b: M, c: O, d: B, e: L, f: A, g: L, h: *mut O);
    C_DeriveKey(a: H, b: M, c: O, d: A, e: L, f: *mut O);
    C_WaitForSlotEvent(a: CK_FLAGS, b: *mut CK_SLOT_ID, c: P);
    C_LoginUser(a: H, b: CK_USER_TYPE, c: *mut CK_UTF8CHAR, d: L, e: *mut CK_UTF8CHAR, f: L);
    C_SessionCancel(a: H, b: CK_FLAGS);
    C_MessageEncryptInit(a: H, b: M, c: O);
    C_EncryptMessage(a: H, b: P, c: L, d: B, e: L, f: B, g: L, h: B, i: PL);
    C_EncryptMessageBegin(a: H, b: P, c: L, d: B, e: L);
    C_EncryptMessageNext(a: H, b: P, c: L, d: B, e: L, f: B, g: PL, h: CK_FLAGS);
    C_MessageEncryptFinal(a: H);
    C_MessageDecryptInit(a: H, b: M, c: O);
    C_DecryptMessage(a: H, b: P, c: L, d: B, e: L, f: B, g: L, h: B, i: PL);
    C_DecryptMessageBegin(a: H, b: P, c: L, d: B, e: L);
    C_DecryptMessageNext(a: H, b: P, c: L, d: B, e: L, f: B, g: PL, h: CK_FLAGS);
    C_MessageDecryptFinal(a: H);
    C_MessageSignInit(a: H, b: M, c: O);
    C_SignMessage(a: H, b: P, c: L, d: B, e: L, f: B, g: PL);
    C_SignMessageBegin(a: H, b: P, c: L);
    C_SignMessageNext(a: H, b: P, c: L, d: B, e: L, f: B, g: PL);
    C_MessageSignFinal(a: H);
    C_MessageVerifyInit(a: H, b: M, c: O);
    C_VerifyMessage(a: H, b: P, c: L, d: B, e: L, f: B, g: L);
    C_VerifyMessageBegin(a: H, b: P, c: L);
    C_VerifyMessageNext(a: H, b: P, c: L, d: B, e: L, f: B, g: L);
    C_MessageVerifyFinal(a: H);
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionStatus(hSession: H) -> CK_RV {
    let _ = hSession;
    CKR_FUNCTION_NOT_PARALLEL
}

#[no_mangle]
pub unsafe extern "C" fn C_CancelFunction(hSession: H) -> CK_RV {
    let _ = hSession;
    CKR_FUNCTION_NOT_PARALLEL
}
