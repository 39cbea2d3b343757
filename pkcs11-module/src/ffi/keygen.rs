//! Key generation: C_GenerateKeyPair (inside the TPM).

use cryptoki_sys::*;

use super::{guard, mechanism, module, out, template};

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pPublicKeyTemplate: *mut CK_ATTRIBUTE,
    ulPublicKeyAttributeCount: CK_ULONG,
    pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
    ulPrivateKeyAttributeCount: CK_ULONG,
    phPublicKey: *mut CK_OBJECT_HANDLE,
    phPrivateKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        m.session(hSession)?;
        // SAFETY: all pointers follow the PKCS#11 contract; NULLs are checked.
        let (mech, public, private, pub_out, priv_out) = unsafe {
            (
                mechanism(pMechanism)?,
                template(pPublicKeyTemplate, ulPublicKeyAttributeCount)?,
                template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount)?,
                out(phPublicKey)?,
                out(phPrivateKey)?,
            )
        };
        let (public_handle, private_handle) =
            m.generate_key_pair(hSession, mech.mechanism, &public, &private)?;
        *pub_out = public_handle;
        *priv_out = private_handle;
        Ok(())
    })
}
