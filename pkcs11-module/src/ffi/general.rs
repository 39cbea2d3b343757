//! General-purpose functions: C_Initialize, C_Finalize, C_GetInfo and the lists.

use cryptoki_sys::*;

use super::{guard, lists, out, pad};
use crate::error::Pkcs11Error;

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(pInitArgs: *mut std::ffi::c_void) -> CK_RV {
    guard(|| {
        let mut threaded = true;
        // SAFETY: a non-NULL argument is a CK_C_INITIALIZE_ARGS (PKCS#11 5.4).
        if let Some(args) = unsafe { (pInitArgs as *const CK_C_INITIALIZE_ARGS).as_ref() } {
            if !args.pReserved.is_null() {
                return Err(Pkcs11Error::ArgumentsBad("pReserved must be NULL"));
            }
            let given = [
                args.CreateMutex.is_some(),
                args.DestroyMutex.is_some(),
                args.LockMutex.is_some(),
                args.UnlockMutex.is_some(),
            ];
            if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
                return Err(Pkcs11Error::ArgumentsBad(
                    "give all four mutex functions or none",
                ));
            }
            // Without threads of its own, the calling threads drive the D-Bus I/O.
            threaded = args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS == 0;
            // The module always locks with the OS primitives, which every caller's
            // threads (OS_LOCKING_OK or its own mutexes over OS threads) are safe with.
        }
        crate::module::initialize(threaded)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(pReserved: *mut std::ffi::c_void) -> CK_RV {
    guard(|| {
        if !pReserved.is_null() {
            return Err(Pkcs11Error::ArgumentsBad("pReserved must be NULL"));
        }
        crate::module::finalize()
    })
}

pub fn library_info() -> CK_INFO {
    CK_INFO {
        cryptokiVersion: CK_VERSION {
            major: 2,
            minor: 40,
        },
        manufacturerID: pad("tpmd"),
        flags: 0,
        libraryDescription: pad("tpmd PKCS#11 module"),
        libraryVersion: CK_VERSION { major: 0, minor: 1 },
    }
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(pInfo: *mut CK_INFO) -> CK_RV {
    guard(|| {
        super::module()?;
        // SAFETY: pInfo points to a CK_INFO (checked for NULL).
        *unsafe { out(pInfo)? } = library_info();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| {
        // SAFETY: ppFunctionList points to a pointer the caller owns (checked for NULL).
        *unsafe { out(ppFunctionList)? } = lists::function_list();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    pInterfacesList: *mut CK_INTERFACE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: pulCount points to a CK_ULONG (checked for NULL).
        let count = unsafe { out(pulCount)? };
        let all = lists::interfaces();
        if pInterfacesList.is_null() {
            *count = all.len() as CK_ULONG;
            return Ok(());
        }
        if (*count as usize) < all.len() {
            *count = all.len() as CK_ULONG;
            return Err(Pkcs11Error::BufferTooSmall(all.len()));
        }
        for (i, iface) in all.iter().enumerate() {
            // SAFETY: the caller's array holds *count >= all.len() entries.
            unsafe { pInterfacesList.add(i).write(*iface) };
        }
        *count = all.len() as CK_ULONG;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    pInterfaceName: *mut CK_UTF8CHAR,
    pVersion: *mut CK_VERSION,
    ppInterface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    guard(|| {
        // SAFETY: ppInterface points to a pointer the caller owns (checked for NULL).
        let slot = unsafe { out(ppInterface)? };
        let name = if pInterfaceName.is_null() {
            None
        } else {
            // SAFETY: a non-NULL interface name is a NUL-terminated string.
            Some(unsafe { std::ffi::CStr::from_ptr(pInterfaceName as *const std::ffi::c_char) })
        };
        // SAFETY: a non-NULL version points to a CK_VERSION.
        let version = unsafe { pVersion.as_ref() }.copied();
        match lists::find_interface(name.map(|n| n.to_bytes()), version, flags) {
            Some(p) => {
                *slot = p;
                Ok(())
            }
            None => Err(Pkcs11Error::ArgumentsBad("no such interface")),
        }
    })
}
