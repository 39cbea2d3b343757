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
    pub input: MessageInput,
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
    pub input: MessageInput,
}

/// The message of a sign or verify operation as it arrives: hashed as it comes for the
/// hash-and-sign mechanisms, kept whole for the others.
pub struct MessageInput {
    hasher: Option<Hasher>,
    data: Zeroizing<Vec<u8>>,
    /// Whether an Update call was used (then the single-part call is out of order).
    pub multi_part: bool,
}

impl MessageInput {
    pub fn new(hasher: Option<Hasher>) -> MessageInput {
        MessageInput {
            hasher,
            data: Zeroizing::new(Vec::new()),
            multi_part: false,
        }
    }

    /// C_SignUpdate, C_VerifyUpdate.
    pub fn update(&mut self, data: &[u8]) {
        self.multi_part = true;
        self.add(data);
    }

    fn add(&mut self, data: &[u8]) {
        match self.hasher.as_mut() {
            Some(hasher) => hasher.update(data),
            None => self.data.extend_from_slice(data),
        }
    }

    /// What the mechanism signs, with the single-part call's `last` data added: the
    /// digest, or the data itself.
    pub fn finish(mut self, last: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
        if let Some(data) = last {
            self.add(data);
        }
        match self.hasher.take() {
            Some(hasher) => Zeroizing::new(hasher.finish()),
            None => std::mem::take(&mut self.data),
        }
    }
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
