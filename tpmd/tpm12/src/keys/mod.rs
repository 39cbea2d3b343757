//! Pure key material helpers (no I/O): clients such as tpm-keyctl can use these
//! without talking to a TPM.

pub mod bind;
pub mod digest_info;
pub mod file;
pub mod public;
pub mod wrap;

/// Why key material could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Codec(#[from] crate::codec::CodecError),
    #[error("RSA operation failed: {0}")]
    Rsa(#[from] rsa::Error),
    #[error("the key is {bits} bits; a TPM 1.2 holds RSA keys of 512 to 2048 bits")]
    KeySize { bits: usize },
    #[error("not a TPM 1.2 key file: {0}; expected a `-----BEGIN TSS KEY BLOB-----` PEM or a raw TPM_KEY12 blob")]
    NotKeyFile(String),
    #[error("the parent key is not an RSA key of at least 2048 bits with the OAEP scheme")]
    BadParent,
    #[error("the data is {len} bytes; this key can bind at most {max}")]
    TooLong { len: usize, max: usize },
}
