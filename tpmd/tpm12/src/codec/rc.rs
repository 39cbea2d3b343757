//! TPM 1.2 return codes as a typed error with a one-line explanation.

/// A non-zero TPM 1.2 return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the TPM 1.2 returned {} (0x{:x}): {}", self.name(), self.0, self.explain())]
pub struct TpmRc(pub u32);

pub const AUTHFAIL: u32 = 1;
pub const BADINDEX: u32 = 2;
pub const BAD_PARAMETER: u32 = 3;
pub const DEACTIVATED: u32 = 6;
pub const DISABLED: u32 = 7;
pub const DISABLED_CMD: u32 = 8;
pub const FAIL: u32 = 9;
pub const BAD_ORDINAL: u32 = 10;
pub const INVALID_KEYHANDLE: u32 = 12;
pub const KEYNOTFOUND: u32 = 13;
pub const INAPPROPRIATE_ENC: u32 = 14;
pub const INVALID_PCR_INFO: u32 = 16;
pub const NOSPACE: u32 = 17;
pub const NOSRK: u32 = 18;
pub const OWNER_SET: u32 = 20;
pub const RESOURCES: u32 = 21;
pub const SIZE: u32 = 23;
pub const WRONGPCRVAL: u32 = 24;
pub const BAD_PARAM_SIZE: u32 = 25;
pub const FAILEDSELFTEST: u32 = 28;
pub const AUTH2FAIL: u32 = 29;
pub const BADTAG: u32 = 30;
pub const DECRYPT_ERROR: u32 = 33;
pub const INVALID_AUTHHANDLE: u32 = 34;
pub const NO_ENDORSEMENT: u32 = 35;
pub const INVALID_KEYUSAGE: u32 = 36;
pub const WRONG_ENTITYTYPE: u32 = 37;
pub const INVALID_POSTINIT: u32 = 38;
pub const INAPPROPRIATE_SIG: u32 = 39;
pub const BAD_KEY_PROPERTY: u32 = 40;
pub const BAD_MIGRATION: u32 = 41;
pub const BAD_SCHEME: u32 = 42;
pub const BAD_DATASIZE: u32 = 43;
pub const BAD_VERSION: u32 = 46;
pub const INVALID_RESOURCE: u32 = 53;
pub const NO_NV_PERMISSION: u32 = 56;
pub const AUTH_CONFLICT: u32 = 59;
pub const BAD_HANDLE: u32 = 88;
pub const BADCONTEXT: u32 = 90;
pub const NOCONTEXTSPACE: u32 = 99;
pub const RETRY: u32 = 0x800;
pub const NEEDS_SELFTEST: u32 = 0x801;
pub const DOING_SELFTEST: u32 = 0x802;
pub const DEFEND_LOCK_RUNNING: u32 = 0x803;

const TABLE: &[(u32, &str, &str)] = &[
    (AUTHFAIL, "TPM_AUTHFAIL", "wrong authorization value (key password, SRK or owner secret)"),
    (BADINDEX, "TPM_BADINDEX", "the PCR, NV or capability index is out of range"),
    (BAD_PARAMETER, "TPM_BAD_PARAMETER", "a command parameter is invalid"),
    (DEACTIVATED, "TPM_DEACTIVATED", "the TPM is deactivated; activate it in the firmware setup"),
    (DISABLED, "TPM_DISABLED", "the TPM is disabled; enable it in the firmware setup"),
    (DISABLED_CMD, "TPM_DISABLED_CMD", "this command is disabled on this TPM"),
    (FAIL, "TPM_FAIL", "the TPM failed the operation"),
    (BAD_ORDINAL, "TPM_BAD_ORDINAL", "the TPM does not implement this command"),
    (INVALID_KEYHANDLE, "TPM_INVALID_KEYHANDLE", "the key handle is not loaded (or the SRK public key is not readable: run `tpm_restrictsrk -a`)"),
    (KEYNOTFOUND, "TPM_KEYNOTFOUND", "the key is not loaded in the TPM"),
    (INAPPROPRIATE_ENC, "TPM_INAPPROPRIATE_ENC", "the key's encryption scheme does not allow this"),
    (INVALID_PCR_INFO, "TPM_INVALID_PCR_INFO", "the key's PCR binding is invalid"),
    (NOSPACE, "TPM_NOSPACE", "no room to load another key; flush one and retry"),
    (NOSRK, "TPM_NOSRK", "the TPM has no SRK: take ownership first (`tpm-keyctl srk create`)"),
    (OWNER_SET, "TPM_OWNER_SET", "the TPM already has an owner"),
    (RESOURCES, "TPM_RESOURCES", "the TPM is out of resources; flush keys or sessions and retry"),
    (SIZE, "TPM_SIZE", "the command is larger than the TPM accepts"),
    (WRONGPCRVAL, "TPM_WRONGPCRVAL", "the key is bound to PCR values the platform no longer has (firmware or boot chain changed)"),
    (BAD_PARAM_SIZE, "TPM_BAD_PARAM_SIZE", "the command size field is wrong"),
    (FAILEDSELFTEST, "TPM_FAILEDSELFTEST", "the TPM failed its self test"),
    (AUTH2FAIL, "TPM_AUTH2FAIL", "wrong authorization value for the second entity"),
    (BADTAG, "TPM_BADTAG", "the command tag does not match the command"),
    (DECRYPT_ERROR, "TPM_DECRYPT_ERROR", "the TPM could not decrypt: wrong key or the data was not made for it (bound with OAEP and the TCPA label)"),
    (INVALID_AUTHHANDLE, "TPM_INVALID_AUTHHANDLE", "the auth session does not exist (any more)"),
    (NO_ENDORSEMENT, "TPM_NO_ENDORSEMENT", "the TPM has no endorsement key; create one with `tpm_createek`"),
    (INVALID_KEYUSAGE, "TPM_INVALID_KEYUSAGE", "the key's usage does not allow this operation"),
    (WRONG_ENTITYTYPE, "TPM_WRONG_ENTITYTYPE", "wrong entity type for the auth session"),
    (INVALID_POSTINIT, "TPM_INVALID_POSTINIT", "the TPM is already started (or not started yet)"),
    (INAPPROPRIATE_SIG, "TPM_INAPPROPRIATE_SIG", "the data to sign does not fit the key's signature scheme"),
    (BAD_KEY_PROPERTY, "TPM_BAD_KEY_PROPERTY", "the key's properties (size, scheme, usage) are not supported by this TPM"),
    (BAD_MIGRATION, "TPM_BAD_MIGRATION", "the key's migration properties are invalid"),
    (BAD_SCHEME, "TPM_BAD_SCHEME", "the signature or encryption scheme is not valid for this key"),
    (BAD_DATASIZE, "TPM_BAD_DATASIZE", "the data is too large or of the wrong size for this key"),
    (BAD_VERSION, "TPM_BAD_VERSION", "the structure version is not supported"),
    (INVALID_RESOURCE, "TPM_INVALID_RESOURCE", "the handle does not belong to the given resource type"),
    (NO_NV_PERMISSION, "TPM_NO_NV_PERMISSION", "the NV area needs authorization to read"),
    (AUTH_CONFLICT, "TPM_AUTH_CONFLICT", "the NV area requires a different authorization"),
    (BAD_HANDLE, "TPM_BAD_HANDLE", "the handle is invalid"),
    (BADCONTEXT, "TPM_BADCONTEXT", "the saved context is invalid (the TPM was reset); reload from the blob"),
    (NOCONTEXTSPACE, "TPM_NOCONTEXTSPACE", "no room for more saved contexts"),
    (RETRY, "TPM_RETRY", "the TPM is busy; retry shortly"),
    (NEEDS_SELFTEST, "TPM_NEEDS_SELFTEST", "the TPM needs a self test before this command"),
    (DOING_SELFTEST, "TPM_DOING_SELFTEST", "the TPM is running its self test; retry shortly"),
    (DEFEND_LOCK_RUNNING, "TPM_DEFEND_LOCK_RUNNING", "dictionary-attack lockout: too many wrong passwords; wait, or reset it with `tpm_resetdalock`"),
];

impl TpmRc {
    fn entry(self) -> Option<&'static (u32, &'static str, &'static str)> {
        TABLE.iter().find(|(code, _, _)| *code == self.0)
    }

    /// The specification's name, e.g. `TPM_AUTHFAIL`.
    pub fn name(self) -> &'static str {
        self.entry().map_or("TPM error", |e| e.1)
    }

    /// One line saying what went wrong and, where useful, what to do.
    pub fn explain(self) -> &'static str {
        self.entry().map_or(
            "see the TPM 1.2 specification (Main Part 2, return codes)",
            |e| e.2,
        )
    }

    pub fn is_auth_failure(self) -> bool {
        self.0 == AUTHFAIL || self.0 == AUTH2FAIL
    }

    /// The TPM has no room: evict something and retry.
    pub fn is_out_of_space(self) -> bool {
        matches!(self.0, NOSPACE | RESOURCES | NOCONTEXTSPACE)
    }

    /// The TPM asks to retry the same command later.
    pub fn is_retry(self) -> bool {
        matches!(self.0, RETRY | DOING_SELFTEST)
    }

    pub fn is_lockout(self) -> bool {
        self.0 == DEFEND_LOCK_RUNNING
    }

    /// The handle we used no longer exists (e.g. after a TPM reset).
    pub fn is_stale_handle(self) -> bool {
        matches!(
            self.0,
            INVALID_KEYHANDLE | KEYNOTFOUND | BAD_HANDLE | INVALID_AUTHHANDLE | INVALID_RESOURCE
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_code() {
        let text = TpmRc(AUTHFAIL).to_string();
        assert!(
            text.contains("TPM_AUTHFAIL") && text.contains("0x1"),
            "{text}"
        );
        assert!(TpmRc(0x803).to_string().contains("lockout"));
        assert!(TpmRc(0x4242).to_string().contains("TPM error (0x4242)"));
        assert!(TpmRc(NOSPACE).is_out_of_space());
        assert!(TpmRc(RESOURCES).is_out_of_space());
        assert!(TpmRc(RETRY).is_retry());
    }
}
