//! One application session: its read/write flag and the operations in progress.

use std::sync::Arc;

use cryptoki_sys::CK_OBJECT_HANDLE;
use zeroize::Zeroizing;

use crate::mechanism::{CipherMech, Hash, Hasher, SignMech};
use crate::store::key::KeyEntry;
use crate::store::key::PublicParts;

/// A C_SignInit waiting for its data.
pub struct SignOp {
    pub key: Arc<KeyEntry>,
    pub mech: SignMech,
    /// For hash-and-sign mechanisms: the running hash of C_SignUpdate data.
    pub hasher: Option<Hasher>,
    /// For the others: the data so far.
    pub data: Zeroizing<Vec<u8>>,
    /// Whether C_SignUpdate was used (then C_Sign is out of order).
    pub multi_part: bool,
    /// The key's own PIN, given by a context-specific login for this operation only.
    pub context_pin: Option<Zeroizing<Vec<u8>>>,
}

/// A C_DecryptInit waiting for its ciphertext.
pub struct DecryptOp {
    pub key: Arc<KeyEntry>,
    pub mech: CipherMech,
    /// The plaintext of a call whose buffer was too small, handed out on the retry.
    pub result: Option<Zeroizing<Vec<u8>>>,
    /// As for signing.
    pub context_pin: Option<Zeroizing<Vec<u8>>>,
}

/// A C_VerifyInit waiting for data and signature (done in software).
pub struct VerifyOp {
    pub parts: PublicParts,
    pub mech: SignMech,
    pub hasher: Option<Hasher>,
    pub data: Zeroizing<Vec<u8>>,
    pub multi_part: bool,
}

/// A C_EncryptInit waiting for its plaintext (done in software).
pub struct EncryptOp {
    pub parts: PublicParts,
    pub mech: CipherMech,
}

/// A C_DigestInit in progress.
pub struct DigestOp {
    pub hash: Hash,
    pub hasher: Hasher,
    /// Whether C_DigestUpdate was used (then C_Digest is out of order).
    pub multi_part: bool,
}

#[derive(Default)]
pub struct Session {
    pub digest: Option<DigestOp>,
    pub find: Option<Vec<CK_OBJECT_HANDLE>>,
    pub sign: Option<SignOp>,
    pub decrypt: Option<DecryptOp>,
    pub verify: Option<VerifyOp>,
    pub encrypt: Option<EncryptOp>,
}

/// The result of a call with an output buffer: the length (the application asked how
/// big) or the bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Produced {
    Length(usize),
    Bytes(Zeroizing<Vec<u8>>),
}

/// An attribute template copied out of C memory.
pub type Template = [(cryptoki_sys::CK_ATTRIBUTE_TYPE, Vec<u8>)];

pub fn template_get(t: &Template, ty: cryptoki_sys::CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    t.iter().find(|(k, _)| *k == ty).map(|(_, v)| v.as_slice())
}

pub fn template_ulong(t: &Template, ty: cryptoki_sys::CK_ATTRIBUTE_TYPE) -> Option<u64> {
    let v = template_get(t, ty)?;
    let bytes: [u8; 8] = v.try_into().ok()?;
    Some(u64::from_ne_bytes(bytes))
}
