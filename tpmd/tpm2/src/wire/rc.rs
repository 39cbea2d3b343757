//! TPM 2.0 response codes and what they mean for a resource manager (retry, evict,
//! recover) and for the user (a readable line). TPM 2.0 Part 2, TPM_RC.

/// The TSS layer a response code came from (bits 16..24).
const LAYER_TPM: u32 = 0;
const LAYER_TCTI: u32 = 10;
const FMT1: u32 = 0x080;
const WARN: u32 = 0x900;

pub const TPM_RC_INITIALIZE: u32 = 0x100;
pub const TPM_RC_OBJECT_MEMORY: u32 = 0x902;
pub const TPM_RC_SESSION_MEMORY: u32 = 0x903;
pub const TPM_RC_OBJECT_HANDLES: u32 = 0x906;
pub const TPM_RC_YIELDED: u32 = 0x908;
pub const TPM_RC_TESTING: u32 = 0x90A;
pub const TPM_RC_LOCKOUT: u32 = 0x921;
pub const TPM_RC_RETRY: u32 = 0x922;
pub const TPM_RC_NV_RATE: u32 = 0x920;
const TPM_RC_REFERENCE_H0: u32 = 0x910;
const TPM_RC_REFERENCE_S6: u32 = 0x91E;
// Format-one error numbers (low 6 bits).
const RC1_INTEGRITY: u32 = 0x1F;
const RC1_AUTH_FAIL: u32 = 0x0E;
const RC1_BAD_AUTH: u32 = 0x22;
const RC1_HANDLE: u32 = 0x0B;
const RC1_VALUE: u32 = 0x04;
const RC1_KEY_SIZE: u32 = 0x07;
const RC1_SCHEME: u32 = 0x12;
const RC1_SIZE: u32 = 0x15;
const RC1_CURVE: u32 = 0x26;
const RC1_BINDING: u32 = 0x25;
const RC1_KEY: u32 = 0x1C;

/// A response code split into the parts that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCode(pub u32);

impl ResponseCode {
    pub fn layer(self) -> u32 {
        (self.0 >> 16) & 0xFF
    }

    fn tpm(self) -> Option<u32> {
        (self.layer() == LAYER_TPM).then_some(self.0 & 0xFFFF)
    }

    /// The format-one error number without its handle/parameter/session position.
    fn format_one(self) -> Option<u32> {
        self.tpm().filter(|c| c & FMT1 != 0).map(|c| c & 0x3F)
    }

    fn is_warning(self, code: u32) -> bool {
        self.tpm() == Some(code)
    }

    /// A format-one error: about a handle, parameter or session of the command itself,
    /// not the TPM's state.
    pub fn is_format_one(self) -> bool {
        self.format_one().is_some()
    }

    /// Transient: the same command may succeed if sent again a little later.
    pub fn is_retryable(self) -> bool {
        [TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING, TPM_RC_NV_RATE]
            .iter()
            .any(|c| self.is_warning(*c))
    }

    /// The TPM has no room for another object: evict one and try again.
    pub fn is_object_memory(self) -> bool {
        [TPM_RC_OBJECT_MEMORY, TPM_RC_OBJECT_HANDLES]
            .iter()
            .any(|c| self.is_warning(*c))
    }

    pub fn is_session_memory(self) -> bool {
        self.is_warning(TPM_RC_SESSION_MEMORY)
    }

    /// A handle or session we hold no longer exists in the TPM: it was reset, or
    /// something else flushed it. Drop what we hold and rebuild from key blobs.
    pub fn is_stale_state(self) -> bool {
        let Some(code) = self.tpm() else {
            return false;
        };
        code == TPM_RC_INITIALIZE
            || (TPM_RC_REFERENCE_H0..=TPM_RC_REFERENCE_S6).contains(&code)
            || self.format_one() == Some(RC1_HANDLE)
            || self.format_one() == Some(RC1_INTEGRITY)
    }

    /// A handle or session we hold no longer exists in the TPM (a reset, or flushed by
    /// someone else); unlike [`is_stale_state`](Self::is_stale_state), not an integrity
    /// failure, which a blob for another TPM also causes.
    pub fn is_lost_handle(self) -> bool {
        let Some(code) = self.tpm() else {
            return false;
        };
        code == TPM_RC_INITIALIZE
            || (TPM_RC_REFERENCE_H0..=TPM_RC_REFERENCE_S6).contains(&code)
            || self.format_one() == Some(RC1_HANDLE)
    }

    pub fn is_initialize(self) -> bool {
        self.tpm() == Some(TPM_RC_INITIALIZE)
    }

    pub fn is_auth_failure(self) -> bool {
        matches!(self.format_one(), Some(RC1_AUTH_FAIL) | Some(RC1_BAD_AUTH))
    }

    pub fn is_lockout(self) -> bool {
        self.is_warning(TPM_RC_LOCKOUT)
    }

    /// The command parameter a format-one error is about (1 for the first), if any.
    pub fn parameter(self) -> Option<u32> {
        let code = self.tpm().filter(|c| c & FMT1 != 0)?;
        (code & 0x40 != 0).then_some((code >> 8) & 0xF)
    }

    /// The private part does not belong to this parent: wrapped for another TPM or SRK.
    pub fn is_wrong_parent(self) -> bool {
        matches!(
            self.format_one(),
            Some(RC1_INTEGRITY) | Some(RC1_BINDING) | Some(RC1_SIZE) | Some(RC1_VALUE)
        )
    }

    /// The TPM does not support this key size, curve or scheme.
    pub fn is_unsupported(self) -> bool {
        matches!(
            self.format_one(),
            Some(RC1_KEY_SIZE) | Some(RC1_CURVE) | Some(RC1_SCHEME) | Some(RC1_KEY)
        )
    }

    /// The connection to the TPM itself failed (TCTI layer): the device or simulator
    /// went away.
    pub fn is_transport_failure(self) -> bool {
        self.layer() == LAYER_TCTI
    }

    /// A handle named in the command does not exist (any position).
    pub fn is_handle(self) -> bool {
        self.format_one() == Some(RC1_HANDLE)
    }

    /// The context could not be loaded: it was saved before a TPM reset, or tampered.
    pub fn is_integrity(self) -> bool {
        self.format_one() == Some(RC1_INTEGRITY)
    }

    /// True for a warning (format zero with the severity bit).
    pub fn is_tpm_warning(self) -> bool {
        self.tpm().is_some_and(|c| c & 0xF80 == WARN)
    }
}

impl std::fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes() {
        assert!(ResponseCode(0x922).is_retryable());
        assert!(ResponseCode(0x908).is_retryable());
        assert!(ResponseCode(0x90A).is_retryable());
        assert!(!ResponseCode(0x902).is_retryable());
        assert!(ResponseCode(0x902).is_object_memory());
        assert!(ResponseCode(0x98E).is_auth_failure()); // AUTH_FAIL, session 1
        assert!(ResponseCode(0x9A2).is_auth_failure()); // BAD_AUTH, session 1
        assert!(ResponseCode(0x921).is_lockout());
        assert!(ResponseCode(0x100).is_stale_state());
        assert!(ResponseCode(0x910).is_stale_state()); // REFERENCE_H0
        assert!(ResponseCode(0x18B).is_stale_state()); // HANDLE, handle 1
        assert!(ResponseCode(0x1DF).is_wrong_parent()); // INTEGRITY, parameter 1
        assert_eq!(ResponseCode(0x1DF).parameter(), Some(1));
        assert_eq!(ResponseCode(0x2C4).parameter(), Some(2)); // VALUE, parameter 2
        assert_eq!(ResponseCode(0x18B).parameter(), None); // HANDLE, handle 1
        assert!(ResponseCode(0xA000A).is_transport_failure());
        assert!(!ResponseCode(0xA000A).is_retryable());
        assert!(ResponseCode(0x2C7).is_unsupported()); // KEY_SIZE, parameter 2
        assert!(ResponseCode(0x902).is_tpm_warning());
        assert!(!ResponseCode(0x98E).is_tpm_warning());
    }
}
