//! One builder per command tpmd sends and one parser per response, grouped as TPM 2.0
//! Part 3 groups them. Sized structures that tpmd passes through untouched (a key's
//! TPM2B_PUBLIC and TPM2B_PRIVATE, a saved context) stay bytes.

mod admin;
mod capability;
mod context;
mod object;
mod policy;
mod random;
mod session;
mod signing;

pub use admin::*;
pub use capability::*;
pub use context::*;
pub use object::*;
pub use policy::*;
pub use random::*;
pub use session::*;
pub use signing::*;
