//! Numbers from the TPM 1.2 specification (Main Part 2, Structures).

/// Request and response tags.
pub mod tag {
    pub const RQU_COMMAND: u16 = 0x00C1;
    pub const RQU_AUTH1_COMMAND: u16 = 0x00C2;
    pub const RQU_AUTH2_COMMAND: u16 = 0x00C3;
    pub const RSP_COMMAND: u16 = 0x00C4;
    pub const RSP_AUTH1_COMMAND: u16 = 0x00C5;
    pub const RSP_AUTH2_COMMAND: u16 = 0x00C6;
}

/// Command ordinals (TPM_ORD_*).
pub mod ord {
    pub const OIAP: u32 = 0x0A;
    pub const OSAP: u32 = 0x0B;
    pub const TAKE_OWNERSHIP: u32 = 0x0D;
    pub const EXTEND: u32 = 0x14;
    pub const PCR_READ: u32 = 0x15;
    pub const UNBIND: u32 = 0x1E;
    pub const CREATE_WRAP_KEY: u32 = 0x1F;
    pub const GET_PUB_KEY: u32 = 0x21;
    pub const SIGN: u32 = 0x3C;
    pub const SET_CAPABILITY: u32 = 0x3F;
    pub const RESET_LOCK_VALUE: u32 = 0x40;
    pub const LOAD_KEY2: u32 = 0x41;
    pub const GET_RANDOM: u32 = 0x46;
    pub const GET_CAPABILITY: u32 = 0x65;
    pub const READ_PUBEK: u32 = 0x7C;
    pub const OWNER_READ_INTERNAL_PUB: u32 = 0x81;
    pub const STARTUP: u32 = 0x99;
    pub const SAVE_CONTEXT: u32 = 0xB8;
    pub const LOAD_CONTEXT: u32 = 0xB9;
    pub const FLUSH_SPECIFIC: u32 = 0xBA;
    pub const NV_DEFINE_SPACE: u32 = 0xCC;
    pub const NV_READ_VALUE: u32 = 0xCF;

    const NAMES: &[(u32, &str)] = &[
        (OIAP, "OIAP"),
        (OSAP, "OSAP"),
        (TAKE_OWNERSHIP, "TakeOwnership"),
        (EXTEND, "Extend"),
        (PCR_READ, "PcrRead"),
        (UNBIND, "UnBind"),
        (CREATE_WRAP_KEY, "CreateWrapKey"),
        (GET_PUB_KEY, "GetPubKey"),
        (SIGN, "Sign"),
        (SET_CAPABILITY, "SetCapability"),
        (RESET_LOCK_VALUE, "ResetLockValue"),
        (LOAD_KEY2, "LoadKey2"),
        (GET_RANDOM, "GetRandom"),
        (GET_CAPABILITY, "GetCapability"),
        (READ_PUBEK, "ReadPubek"),
        (OWNER_READ_INTERNAL_PUB, "OwnerReadInternalPub"),
        (STARTUP, "Startup"),
        (SAVE_CONTEXT, "SaveContext"),
        (LOAD_CONTEXT, "LoadContext"),
        (FLUSH_SPECIFIC, "FlushSpecific"),
        (NV_DEFINE_SPACE, "NV_DefineSpace"),
        (NV_READ_VALUE, "NV_ReadValue"),
    ];

    /// The ordinal's name as the TPM 1.2 specification spells it (without `TPM_`), or
    /// its value in hex.
    pub fn name(ordinal: u32) -> String {
        NAMES
            .iter()
            .find(|(o, _)| *o == ordinal)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| format!("{ordinal:#x}"))
    }
}

/// Reserved key handles.
pub mod kh {
    pub const SRK: u32 = 0x4000_0000;
    pub const OWNER: u32 = 0x4000_0001;
    pub const EK: u32 = 0x4000_0006;
}

/// Entity types for OSAP (TPM_ET_*).
pub mod et {
    pub const KEYHANDLE: u16 = 0x0001;
    pub const OWNER: u16 = 0x0002;
    pub const SRK: u16 = 0x0004;
}

/// Resource types for FlushSpecific and SaveContext (TPM_RT_*).
pub mod rt {
    pub const KEY: u32 = 0x0000_0001;
    pub const AUTH: u32 = 0x0000_0002;
}

/// Structure tags (TPM_TAG_*).
pub mod stag {
    pub const PERMANENT_FLAGS: u16 = 0x001F;
    pub const KEY12: u16 = 0x0028;
    pub const CAP_VERSION_INFO: u16 = 0x0030;
    pub const DA_INFO: u16 = 0x0037;
    pub const DA_INFO_LIMITED: u16 = 0x0038;
    pub const DA_ACTION_TYPE: u16 = 0x0039;
    pub const NV_ATTRIBUTES: u16 = 0x0017;
    pub const NV_DATA_PUBLIC: u16 = 0x0018;
}

/// Key usage (TPM_KEY_*).
pub mod key_usage {
    pub const SIGNING: u16 = 0x0010;
    pub const STORAGE: u16 = 0x0011;
    pub const IDENTITY: u16 = 0x0012;
    pub const AUTHCHANGE: u16 = 0x0013;
    pub const BIND: u16 = 0x0014;
    pub const LEGACY: u16 = 0x0015;
    pub const MIGRATE: u16 = 0x0016;
}

/// Key flags (TPM_KEY_FLAGS bits).
pub mod key_flags {
    pub const REDIRECTION: u32 = 0x0000_0001;
    pub const MIGRATABLE: u32 = 0x0000_0002;
    pub const IS_VOLATILE: u32 = 0x0000_0004;
    pub const PCR_IGNORED_ON_READ: u32 = 0x0000_0008;
    pub const MIGRATE_AUTHORITY: u32 = 0x0000_0010;
}

/// authDataUsage (TPM_AUTH_*).
pub mod auth_usage {
    pub const NEVER: u8 = 0x00;
    pub const ALWAYS: u8 = 0x01;
    pub const PRIV_USE_ONLY: u8 = 0x03;
}

/// Algorithm, encryption and signature schemes.
pub mod alg {
    pub const RSA: u32 = 0x0000_0001;
    pub const ES_NONE: u16 = 0x0001;
    pub const ES_RSAESPKCSV15: u16 = 0x0002;
    pub const ES_RSAESOAEP_SHA1_MGF1: u16 = 0x0003;
    pub const SS_NONE: u16 = 0x0001;
    pub const SS_RSASSAPKCS1V15_SHA1: u16 = 0x0002;
    pub const SS_RSASSAPKCS1V15_DER: u16 = 0x0003;
    pub const SS_RSASSAPKCS1V15_INFO: u16 = 0x0004;
}

/// Payload types (TPM_PT_*).
pub mod payload {
    pub const ASYM: u8 = 0x01;
    pub const BIND: u8 = 0x02;
}

/// GetCapability areas and sub-capabilities.
pub mod cap {
    pub const FLAG: u32 = 0x04;
    pub const PROPERTY: u32 = 0x05;
    pub const KEY_HANDLE: u32 = 0x07;
    pub const NV_LIST: u32 = 0x0D;
    pub const MFR: u32 = 0x10;
    pub const HANDLE: u32 = 0x14;
    pub const DA_LOGIC: u32 = 0x19;
    pub const VERSION_VAL: u32 = 0x1A;

    pub const PROP_PCR: u32 = 0x101;
    pub const PROP_MANUFACTURER: u32 = 0x103;
    pub const PROP_KEYS: u32 = 0x104;
    pub const PROP_AUTHSESS: u32 = 0x10A;
    pub const PROP_MAX_AUTHSESS: u32 = 0x10D;
    pub const PROP_MAX_KEYS: u32 = 0x110;
    pub const PROP_OWNER: u32 = 0x111;
    pub const FLAG_PERMANENT: u32 = 0x108;
    pub const FLAG_VOLATILE: u32 = 0x109;
}

/// TPM_SetCapability areas and permanent flag indices.
pub mod set_cap {
    pub const PERM_FLAGS: u32 = 0x01;
    pub const PF_READSRKPUB: u32 = 17;
}

/// TPM_Startup types.
pub mod startup {
    pub const CLEAR: u16 = 0x0001;
    pub const STATE: u16 = 0x0002;
}

/// TPM_PID_OWNER, the protocol id of TakeOwnership.
pub const PID_OWNER: u16 = 0x0005;

/// The NV index whose definition locks NV (TPM_NV_INDEX_LOCK).
pub const NV_INDEX_LOCK: u32 = 0xFFFF_FFFF;

/// The OAEP encoding parameter the TPM uses for everything it encrypts or decrypts.
pub const OAEP_LABEL: &[u8] = b"TCPA";

/// TPM_STRUCT_VER 1.1.0.0, the version field of TPM 1.1 structures still in use.
pub const STRUCT_VER_1_1: [u8; 4] = [1, 1, 0, 0];
