//! The TPM 1.2 wire codec: pure (no I/O, no clock; randomness is passed in).

pub mod auth;
pub mod consts;
pub mod frame;
pub mod key;
pub mod ops;
pub mod pcr;
pub mod rc;
pub mod wire;

pub use auth::{AuthSecret, Nonce, WellKnown};
pub use frame::{Command, CommandAuth, Response, ResponseError};
pub use key::{Key12, KeyParms, KeyVersion, PubKey, RsaKeyParms, StoreAsymkey};
pub use pcr::{PcrInfo, PcrSelection};
pub use rc::TpmRc;
pub use wire::CodecError;
