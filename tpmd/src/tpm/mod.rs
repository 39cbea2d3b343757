//! The TPM side of tpmd: response codes, the resource manager that owns the TPM, the key
//! operations on top of it, and the worker thread that serialises every request.

pub mod blob;
pub mod counters;
pub mod error;
pub mod info;
pub mod ops;
pub mod rc;
pub mod resource_manager;
pub mod session;
pub mod worker;

pub use error::{TpmError, TpmResult};
pub use resource_manager::ResourceManager;
pub use worker::TpmWorker;
