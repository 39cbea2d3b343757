//! libtpmd_pkcs11.so: a PKCS#11 2.40 / 3.0 module whose token holds the user's TPM keys
//! and whose private-key operations are done by tpmd over D-Bus.
//!
//! `ffi` is the C boundary (one file per PKCS#11 chapter); everything beneath it is plain
//! Rust: `module` (global state, fork detection), `daemon` (the tpmd connection),
//! `store` (key files become objects), `ops` (what each function does), `mechanism`.

pub mod config;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod ffi;
pub mod mechanism;
pub mod module;
pub mod ops;
pub mod session;
pub mod store;
pub mod token;
