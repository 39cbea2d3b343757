//! The function lists (2.40 and 3.0) and the interfaces C_GetInterface hands out.

use cryptoki_sys::*;

use super::decrypt::*;
use super::digest::*;
use super::encrypt::*;
use super::general::*;
use super::keygen::*;
use super::object::*;
use super::random::*;
use super::session::*;
use super::sign::*;
use super::slot::*;
use super::unsupported::*;
use super::verify::*;

macro_rules! function_list {
    ($ty:ident, $major:expr, $minor:expr, [$($f:ident),* $(,)?]) => {
        $ty {
            version: CK_VERSION { major: $major, minor: $minor },
            $($f: Some($f),)*
        }
    };
}

macro_rules! v2_functions {
    ($ty:ident, $major:expr, $minor:expr $(, $extra:ident)*) => {
        function_list!($ty, $major, $minor, [
            C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList,
            C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo,
            C_InitToken, C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession,
            C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState, C_SetOperationState,
            C_Login, C_Logout, C_CreateObject, C_CopyObject, C_DestroyObject,
            C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit,
            C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate,
            C_EncryptFinal, C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal,
            C_DigestInit, C_Digest, C_DigestUpdate, C_DigestKey, C_DigestFinal,
            C_SignInit, C_Sign, C_SignUpdate, C_SignFinal, C_SignRecoverInit,
            C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal,
            C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate,
            C_DecryptDigestUpdate, C_SignEncryptUpdate, C_DecryptVerifyUpdate,
            C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey,
            C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction,
            C_WaitForSlotEvent $(, $extra)*
        ])
    };
}

static LIST_2_40: CK_FUNCTION_LIST = v2_functions!(CK_FUNCTION_LIST, 2, 40);

static LIST_3_0: CK_FUNCTION_LIST_3_0 = v2_functions!(
    CK_FUNCTION_LIST_3_0,
    3,
    0,
    C_GetInterfaceList,
    C_GetInterface,
    C_LoginUser,
    C_SessionCancel,
    C_MessageEncryptInit,
    C_EncryptMessage,
    C_EncryptMessageBegin,
    C_EncryptMessageNext,
    C_MessageEncryptFinal,
    C_MessageDecryptInit,
    C_DecryptMessage,
    C_DecryptMessageBegin,
    C_DecryptMessageNext,
    C_MessageDecryptFinal,
    C_MessageSignInit,
    C_SignMessage,
    C_SignMessageBegin,
    C_SignMessageNext,
    C_MessageSignFinal,
    C_MessageVerifyInit,
    C_VerifyMessage,
    C_VerifyMessageBegin,
    C_VerifyMessageNext,
    C_MessageVerifyFinal
);

const NAME: &[u8] = b"PKCS 11\0";

/// The interface records. They hold raw pointers into statics, which never change.
struct Interfaces([CK_INTERFACE; 2]);
// SAFETY: the records are immutable and point to immutable statics.
unsafe impl Sync for Interfaces {}

static INTERFACES: Interfaces = Interfaces([
    CK_INTERFACE {
        pInterfaceName: NAME.as_ptr() as *mut CK_CHAR,
        pFunctionList: &LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut std::ffi::c_void,
        flags: CKF_INTERFACE_FORK_SAFE,
    },
    CK_INTERFACE {
        pInterfaceName: NAME.as_ptr() as *mut CK_CHAR,
        pFunctionList: &LIST_2_40 as *const CK_FUNCTION_LIST as *mut std::ffi::c_void,
        flags: CKF_INTERFACE_FORK_SAFE,
    },
]);

pub fn function_list() -> *mut CK_FUNCTION_LIST {
    // Applications treat the list as read-only; the C API just lacks `const`.
    &LIST_2_40 as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST
}

pub fn interfaces() -> &'static [CK_INTERFACE] {
    &INTERFACES.0
}

/// The interface for a name (NULL: the default) and version (NULL: the newest).
pub fn find_interface(
    name: Option<&[u8]>,
    version: Option<CK_VERSION>,
    flags: CK_FLAGS,
) -> Option<*mut CK_INTERFACE> {
    if name.is_some_and(|n| n != &NAME[..NAME.len() - 1]) || flags & !CKF_INTERFACE_FORK_SAFE != 0 {
        return None;
    }
    let index = match version {
        None => 0,
        Some(CK_VERSION { major: 3, minor: 0 }) => 0,
        Some(CK_VERSION { major: 2, .. }) => 1,
        Some(_) => return None,
    };
    Some(&INTERFACES.0[index] as *const CK_INTERFACE as *mut CK_INTERFACE)
}
