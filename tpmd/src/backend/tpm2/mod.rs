//! The TPM 2.0 backend: response codes, the resource manager that owns the TPM through
//! tss-esapi, and the key operations on top of it.

pub mod blob;
pub mod error;
pub mod info;
pub mod ops;
pub mod rc;
pub mod resource_manager;
pub mod session;

mod backend;

pub use backend::Tpm2Backend;
pub use error::{TpmError, TpmResult};
pub use resource_manager::ResourceManager;
