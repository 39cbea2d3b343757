//! TPM 2.0 commands and responses as bytes, in the layouts of TPM 2.0 Part 3: one
//! builder per command and a parser for its response. No I/O and no cryptography: the
//! session layer fills the authorization area, the transport moves the bytes.

pub mod cc;
mod command;
pub mod ops;
pub mod rc;
mod response;

pub use command::{AuthCommand, Command};
pub use rc::ResponseCode;
pub use response::{AuthResponse, Response, WireError};

pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
pub const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_ST_HASHCHECK: u16 = 0x8024;

/// Permanent handles (TPM_RH) and the password session (TPM_RS_PW).
pub mod handle {
    pub const OWNER: u32 = 0x4000_0001;
    pub const NULL: u32 = 0x4000_0007;
    pub const PASSWORD: u32 = 0x4000_0009;
    pub const LOCKOUT: u32 = 0x4000_000A;
    pub const ENDORSEMENT: u32 = 0x4000_000B;
    pub const PLATFORM: u32 = 0x4000_000C;
    /// The first transient object handle (TPM_HT_TRANSIENT).
    pub const TRANSIENT_FIRST: u32 = 0x8000_0000;
    /// The first persistent object handle (TPM_HT_PERSISTENT).
    pub const PERSISTENT_FIRST: u32 = 0x8100_0000;
    /// First HMAC and policy session handles.
    pub const HMAC_SESSION_FIRST: u32 = 0x0200_0000;
    pub const POLICY_SESSION_FIRST: u32 = 0x0300_0000;

    /// The handle type (its top byte).
    pub fn kind(handle: u32) -> u8 {
        (handle >> 24) as u8
    }

    pub fn is_transient(handle: u32) -> bool {
        kind(handle) == 0x80
    }

    pub fn is_persistent(handle: u32) -> bool {
        kind(handle) == 0x81
    }
}

/// TPMA_SESSION bits.
pub mod session_attr {
    pub const CONTINUE_SESSION: u8 = 0x01;
    pub const DECRYPT: u8 = 0x20;
    pub const ENCRYPT: u8 = 0x40;
}
