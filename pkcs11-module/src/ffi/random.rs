//! Random number generation: C_GenerateRandom from the TPM, C_SeedRandom refused.

use cryptoki_sys::*;

use super::{bytes, guard, module};
use crate::error::Pkcs11Error;

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    hSession: CK_SESSION_HANDLE,
    pSeed: *mut CK_BYTE,
    ulSeedLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        module()?.session(hSession)?;
        // SAFETY: pSeed holds ulSeedLen bytes.
        unsafe { bytes(pSeed, ulSeedLen) }?;
        // The TPM's generator is seeded inside the TPM; PKCS#11 has this answer for a
        // token whose generator takes no seed.
        Err(Pkcs11Error::RandomSeedNotSupported)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    hSession: CK_SESSION_HANDLE,
    pRandomData: *mut CK_BYTE,
    ulRandomLen: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        if ulRandomLen == 0 {
            return Ok(());
        }
        if pRandomData.is_null() {
            return Err(Pkcs11Error::ArgumentsBad(
                "NULL buffer with a non-zero length",
            ));
        }
        // SAFETY: pRandomData points to ulRandomLen writable bytes (checked for NULL).
        let out = unsafe { std::slice::from_raw_parts_mut(pRandomData, ulRandomLen as usize) };
        m.generate_random(hSession, out)
    })
}
