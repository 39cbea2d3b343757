//! The C boundary. Every exported function is a thin wrapper: it copies arguments out
//! of C memory, calls the plain-Rust logic beneath, copies results back, and turns the
//! `Result` into a `CK_RV` in [`guard`], which also keeps panics from crossing into C.
//!
//! The functions are `unsafe extern "C"`: their safety contract is the PKCS#11 spec's
//! (valid pointers of the stated lengths), which is why they carry no `# Safety` docs.
#![allow(clippy::missing_safety_doc, non_snake_case)]

pub mod decrypt;
pub mod digest;
pub mod encrypt;
pub mod general;
pub mod keygen;
pub mod lists;
pub mod object;
pub mod random;
pub mod session;
pub mod sign;
pub mod slot;
pub mod unsupported;
pub mod verify;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cryptoki_sys::*;

use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{MechanismArg, OaepArg};
use crate::module::Module;
use crate::session::Produced;

/// Set (to anything) to have each failed call's reason written to stderr: a CK_RV says
/// what failed, this says why.
pub const DEBUG_ENV: &str = "TPMD_PKCS11_DEBUG";

fn debugging() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(DEBUG_ENV).is_some())
}

/// Runs one PKCS#11 call: the only place a `Result` becomes a `CK_RV`.
pub fn guard(f: impl FnOnce() -> Result<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => {
            let rv = e.rv();
            if debugging() && !matches!(e, Pkcs11Error::BufferTooSmall(_)) {
                eprintln!("libtpmd_pkcs11: {e} (CK_RV {rv:#x})");
            }
            rv
        }
        Err(_) => CKR_GENERAL_ERROR,
    }
}

pub fn module() -> Result<Arc<Module>> {
    crate::module::get()
}

/// The body of every C_*Init: a NULL mechanism cancels the session's active operation
/// (PKCS#11 3.0), any other starts one with that mechanism.
pub unsafe fn start_or_cancel(
    session: CK_SESSION_HANDLE,
    p: *const CK_MECHANISM,
    cancel: impl FnOnce(&Module) -> Result<()>,
    start: impl FnOnce(&Module, &MechanismArg) -> Result<()>,
) -> CK_RV {
    guard(|| {
        let m = module()?;
        if p.is_null() {
            m.session(session)?;
            return cancel(&m);
        }
        // SAFETY: p points to a CK_MECHANISM (checked for NULL; the caller's contract).
        let mech = unsafe { mechanism(p)? };
        start(&m, &mech)
    })
}

/// The one slot's id.
pub const SLOT_ID: CK_SLOT_ID = 1;

pub fn check_slot(slot: CK_SLOT_ID) -> Result<()> {
    if slot == SLOT_ID {
        Ok(())
    } else {
        Err(Pkcs11Error::SlotIdInvalid)
    }
}

/// Borrows `len` bytes at `p`; NULL is only accepted for an empty input.
pub unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Pkcs11Error::ArgumentsBad(
            "NULL data with a non-zero length",
        ));
    }
    // SAFETY: the caller passes a buffer of `len` bytes (PKCS#11 contract), non-NULL here.
    Ok(unsafe { std::slice::from_raw_parts(p, len as usize) })
}

/// A mutable reference to an output argument, or CKR_ARGUMENTS_BAD for NULL.
pub unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T> {
    // SAFETY: non-NULL pointers to output arguments point to writable storage of T.
    unsafe { p.as_mut() }.ok_or(Pkcs11Error::ArgumentsBad("NULL output pointer"))
}

/// The attribute array at `p`.
pub unsafe fn attributes<'a>(p: *mut CK_ATTRIBUTE, n: CK_ULONG) -> Result<&'a mut [CK_ATTRIBUTE]> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Pkcs11Error::ArgumentsBad(
            "NULL template with a non-zero count",
        ));
    }
    // SAFETY: the caller passes an array of `n` attributes, non-NULL here.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n as usize) })
}

/// A template copied out of C memory.
pub unsafe fn template(
    p: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    // SAFETY: forwarded contract of `attributes` and `bytes`.
    let attrs = unsafe { attributes(p, n)? };
    attrs
        .iter()
        .map(|a| {
            // SAFETY: each attribute's pValue holds ulValueLen bytes.
            let v = unsafe { bytes(a.pValue as *const u8, a.ulValueLen)? };
            Ok((a.type_, v.to_vec()))
        })
        .collect()
}

/// The mechanism and the parameters this module understands, copied out of C memory.
pub unsafe fn mechanism(p: *const CK_MECHANISM) -> Result<MechanismArg> {
    // SAFETY: a non-NULL mechanism pointer points to a CK_MECHANISM.
    let m = unsafe { p.as_ref() }.ok_or(Pkcs11Error::ArgumentsBad("NULL mechanism"))?;
    let mut arg = MechanismArg::plain(m.mechanism);
    let len = m.ulParameterLen as usize;
    if m.pParameter.is_null() {
        return Ok(arg);
    }
    if len == std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>() {
        // SAFETY: the parameter block has the size of this struct; read unaligned to be safe.
        let pss =
            unsafe { std::ptr::read_unaligned(m.pParameter as *const CK_RSA_PKCS_PSS_PARAMS) };
        arg.pss = Some((pss.hashAlg, pss.mgf, pss.sLen));
    }
    if len == std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() {
        // SAFETY: as above, for the OAEP parameter struct.
        let oaep =
            unsafe { std::ptr::read_unaligned(m.pParameter as *const CK_RSA_PKCS_OAEP_PARAMS) };
        if oaep.source != 0 && oaep.source != CKZ_DATA_SPECIFIED {
            return Err(Pkcs11Error::MechanismParamInvalid(
                "OAEP source must be CKZ_DATA_SPECIFIED",
            ));
        }
        // A NULL label is the empty label, whatever length accompanies it.
        let label_len = if oaep.pSourceData.is_null() {
            0
        } else {
            oaep.ulSourceDataLen
        };
        // SAFETY: a non-NULL pSourceData holds ulSourceDataLen bytes.
        let label = unsafe { bytes(oaep.pSourceData as *const u8, label_len) }?;
        arg.oaep = Some(OaepArg {
            hash_alg: oaep.hashAlg,
            mgf: oaep.mgf,
            label: label.to_vec(),
        });
    }
    Ok(arg)
}

/// The caller's output capacity: None when it passed a NULL buffer (length query).
pub unsafe fn room(buf: *mut u8, len: *mut CK_ULONG) -> Result<Option<usize>> {
    // SAFETY: forwarded contract of `out`.
    let len = unsafe { out(len)? };
    Ok((!buf.is_null()).then_some(*len as usize))
}

/// Hands a produced result (or the needed size) back through `buf`/`len`.
pub unsafe fn produce(buf: *mut u8, len: *mut CK_ULONG, r: Result<Produced>) -> Result<()> {
    // SAFETY: forwarded contract of `out`.
    let len = unsafe { out(len)? };
    match r {
        Ok(Produced::Length(n)) => {
            *len = n as CK_ULONG;
            Ok(())
        }
        Ok(Produced::Bytes(b)) => {
            // SAFETY: `room` saw a non-NULL buffer of at least b.len() bytes.
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), buf, b.len()) };
            *len = b.len() as CK_ULONG;
            Ok(())
        }
        Err(Pkcs11Error::BufferTooSmall(n)) => {
            *len = n as CK_ULONG;
            Err(Pkcs11Error::BufferTooSmall(n))
        }
        Err(e) => Err(e),
    }
}

/// The calls that end an operation with output (C_Sign, C_SignFinal, C_Digest,
/// C_DigestFinal, C_Decrypt): reads the input, if the call has one, and the room for the
/// output. A bad pointer ends the operation (`abort`), as PKCS#11 requires; otherwise `op`
/// runs and its result, or the length it needs, goes back through `buf`/`len`.
pub unsafe fn finish_with_output(
    input: Option<(*const u8, CK_ULONG)>,
    buf: *mut u8,
    len: *mut CK_ULONG,
    abort: impl FnOnce(),
    op: impl FnOnce(Option<&[u8]>, Option<usize>) -> Result<Produced>,
) -> Result<()> {
    // SAFETY: forwarded contracts of `bytes` (the input holds its length in bytes) and
    // `room` (the output pair follows the PKCS#11 rules).
    let args = unsafe {
        let data = match input {
            Some((p, n)) => bytes(p, n).map(Some),
            None => Ok(None),
        };
        (data, room(buf, len))
    };
    let (data, room) = match args {
        (Ok(d), Ok(r)) => (d, r),
        (Err(e), _) | (_, Err(e)) => {
            abort();
            return Err(e);
        }
    };
    let r = op(data, room);
    // SAFETY: forwarded contract of `produce`; `room` has seen this pair.
    unsafe { produce(buf, len, r) }
}

/// Copies `s` into a blank-padded fixed field.
pub use crate::token::pad;
