//! Command codes (TPM_CC) of the commands tpmd sends, and their names for logs and
//! counters.

pub const EVICT_CONTROL: u32 = 0x120;
pub const CREATE_PRIMARY: u32 = 0x131;
pub const DICTIONARY_ATTACK_LOCK_RESET: u32 = 0x139;
pub const DICTIONARY_ATTACK_PARAMETERS: u32 = 0x13A;
pub const STARTUP: u32 = 0x144;
pub const SHUTDOWN: u32 = 0x145;
pub const OBJECT_CHANGE_AUTH: u32 = 0x150;
pub const CREATE: u32 = 0x153;
pub const IMPORT: u32 = 0x156;
pub const LOAD: u32 = 0x157;
pub const RSA_DECRYPT: u32 = 0x159;
pub const SIGN: u32 = 0x15D;
pub const CONTEXT_LOAD: u32 = 0x161;
pub const CONTEXT_SAVE: u32 = 0x162;
pub const FLUSH_CONTEXT: u32 = 0x165;
pub const LOAD_EXTERNAL: u32 = 0x167;
pub const POLICY_AUTHORIZE: u32 = 0x16A;
pub const POLICY_AUTH_VALUE: u32 = 0x16B;
pub const POLICY_COMMAND_CODE: u32 = 0x16C;
pub const POLICY_OR: u32 = 0x171;
pub const READ_PUBLIC: u32 = 0x173;
pub const START_AUTH_SESSION: u32 = 0x176;
pub const VERIFY_SIGNATURE: u32 = 0x177;
pub const GET_CAPABILITY: u32 = 0x17A;
pub const GET_RANDOM: u32 = 0x17B;
pub const HASH: u32 = 0x17D;
pub const PCR_READ: u32 = 0x17E;
pub const POLICY_PCR: u32 = 0x17F;
pub const POLICY_RESTART: u32 = 0x180;
pub const PCR_EXTEND: u32 = 0x182;
pub const POLICY_GET_DIGEST: u32 = 0x189;
pub const TEST_PARMS: u32 = 0x18A;
pub const POLICY_PASSWORD: u32 = 0x18C;

const NAMES: &[(u32, &str)] = &[
    (EVICT_CONTROL, "EvictControl"),
    (CREATE_PRIMARY, "CreatePrimary"),
    (DICTIONARY_ATTACK_LOCK_RESET, "DictionaryAttackLockReset"),
    (DICTIONARY_ATTACK_PARAMETERS, "DictionaryAttackParameters"),
    (STARTUP, "Startup"),
    (SHUTDOWN, "Shutdown"),
    (OBJECT_CHANGE_AUTH, "ObjectChangeAuth"),
    (CREATE, "Create"),
    (IMPORT, "Import"),
    (LOAD, "Load"),
    (RSA_DECRYPT, "RSA_Decrypt"),
    (SIGN, "Sign"),
    (CONTEXT_LOAD, "ContextLoad"),
    (CONTEXT_SAVE, "ContextSave"),
    (FLUSH_CONTEXT, "FlushContext"),
    (LOAD_EXTERNAL, "LoadExternal"),
    (POLICY_AUTHORIZE, "PolicyAuthorize"),
    (POLICY_AUTH_VALUE, "PolicyAuthValue"),
    (POLICY_COMMAND_CODE, "PolicyCommandCode"),
    (POLICY_OR, "PolicyOR"),
    (READ_PUBLIC, "ReadPublic"),
    (START_AUTH_SESSION, "StartAuthSession"),
    (VERIFY_SIGNATURE, "VerifySignature"),
    (GET_CAPABILITY, "GetCapability"),
    (GET_RANDOM, "GetRandom"),
    (HASH, "Hash"),
    (PCR_READ, "PCR_Read"),
    (POLICY_PCR, "PolicyPCR"),
    (POLICY_RESTART, "PolicyRestart"),
    (PCR_EXTEND, "PCR_Extend"),
    (POLICY_GET_DIGEST, "PolicyGetDigest"),
    (TEST_PARMS, "TestParms"),
    (POLICY_PASSWORD, "PolicyPassword"),
];

/// The command's name as the TPM 2.0 specification spells it (without `TPM2_`), or
/// its code in hex for commands tpmd does not send.
pub fn name(code: u32) -> String {
    NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("{code:#x}"))
}

/// The static name of a command tpmd sends (for error messages).
pub fn static_name(code: u32) -> &'static str {
    NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("TPM command", |(_, n)| n)
}
