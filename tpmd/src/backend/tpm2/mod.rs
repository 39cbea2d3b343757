//! The TPM 2.0 backend: the resource manager that owns our connections to the TPM, and
//! the key operations on top of it, over our own command path (`tpmd-tpm2`).

pub mod blob;
pub mod error;
pub mod info;
pub mod ops;
pub mod pcrs;
pub mod policy;
pub mod resource_manager;

mod backend;

pub use backend::Tpm2Backend;
pub use error::{TpmError, TpmResult};
pub use resource_manager::{ResourceManager, Strategy};
