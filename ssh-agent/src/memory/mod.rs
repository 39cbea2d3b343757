//! Keys a TPM cannot hold (Ed25519, ECDSA P-521, DSA, RSA of sizes the TPM lacks), kept
//! in the agent's own memory as ssh-agent keeps them: in locked pages, wiped on removal.

mod key;
mod locked;

pub use key::MemoryKey;
pub use locked::harden_process;
