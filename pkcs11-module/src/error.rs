//! Every way a PKCS#11 call can fail, and the one place that turns it into a `CK_RV`.

use cryptoki_sys::*;
use thiserror::Error;

/// A failed PKCS#11 call. The variants mirror the return values the spec assigns, so
/// the logic beneath the C boundary says *what* went wrong and `rv()` says how to report it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Pkcs11Error {
    #[error("C_Initialize has not been called")]
    NotInitialized,
    #[error("C_Initialize was already called")]
    AlreadyInitialized,
    #[error("bad arguments: {0}")]
    ArgumentsBad(&'static str),
    #[error("the application may not create threads, and this module needs one")]
    NeedToCreateThreads,
    #[error("no such slot")]
    SlotIdInvalid,
    #[error("no such session")]
    SessionHandleInvalid,
    #[error("sessions must be opened with CKF_SERIAL_SESSION")]
    SessionParallelNotSupported,
    #[error("the session is read-only")]
    SessionReadOnly,
    #[error("no such object")]
    ObjectHandleInvalid,
    #[error("no such key, or it cannot do this")]
    KeyHandleInvalid,
    #[error("the key does not allow this operation")]
    KeyFunctionNotPermitted,
    #[error("the mechanism does not fit this key type")]
    KeyTypeInconsistent,
    #[error("unknown or unsupported mechanism")]
    MechanismInvalid,
    #[error("bad mechanism parameters: {0}")]
    MechanismParamInvalid(&'static str),
    #[error("another operation is active in this session")]
    OperationActive,
    #[error("no operation of this kind is active")]
    OperationNotInitialized,
    #[error("the output buffer needs {0} bytes")]
    BufferTooSmall(usize),
    #[error("input has the wrong length")]
    DataLenRange,
    #[error("ciphertext has the wrong length")]
    EncryptedDataLenRange,
    #[error("ciphertext does not decrypt")]
    EncryptedDataInvalid,
    #[error("the signature does not verify")]
    SignatureInvalid,
    #[error("the signature has the wrong length")]
    SignatureLenRange,
    #[error("attribute {0:#x} is not valid here")]
    AttributeTypeInvalid(CK_ATTRIBUTE_TYPE),
    #[error("attribute {0:#x} has a bad value")]
    AttributeValueInvalid(CK_ATTRIBUTE_TYPE),
    #[error("attribute {0:#x} cannot be changed")]
    AttributeReadOnly(CK_ATTRIBUTE_TYPE),
    #[error("attribute {0:#x} is sensitive")]
    AttributeSensitive(CK_ATTRIBUTE_TYPE),
    #[error("the template lacks attribute {0:#x}")]
    TemplateIncomplete(CK_ATTRIBUTE_TYPE),
    #[error("the template is inconsistent: {0}")]
    TemplateInconsistent(&'static str),
    #[error("this object cannot be changed or destroyed")]
    ActionProhibited,
    #[error("a user is already logged in")]
    UserAlreadyLoggedIn,
    #[error("log in first")]
    UserNotLoggedIn,
    #[error("only the normal user (CKU_USER) exists on this token")]
    UserTypeInvalid,
    #[error("wrong PIN")]
    PinIncorrect,
    #[error(
        "a key with a PIN keeps one: its dictionary-attack protection is fixed when it is made"
    )]
    PinLenRange,
    #[error("too many wrong PINs: wait and try again")]
    PinLocked,
    #[error("the function is not supported by this token")]
    FunctionNotSupported,
    #[error("this token cannot do that: {0}")]
    FunctionFailed(String),
    #[error("tpmd failed: {0}")]
    Device(String),
    #[error("key values never leave the TPM, so keys cannot be digested")]
    KeyIndigestible,
    #[error("the token has no random number generator")]
    RandomNoRng,
    #[error("the TPM's generator takes no seed from applications")]
    RandomSeedNotSupported,
    #[error("out of memory")]
    HostMemory,
    #[error("internal error: {0}")]
    General(String),
}

/// What a call returns.
pub type Result<T> = std::result::Result<T, Pkcs11Error>;

impl Pkcs11Error {
    /// The `CK_RV` for this error: the only place errors become numbers.
    pub fn rv(&self) -> CK_RV {
        use Pkcs11Error::*;
        match self {
            NotInitialized => CKR_CRYPTOKI_NOT_INITIALIZED,
            AlreadyInitialized => CKR_CRYPTOKI_ALREADY_INITIALIZED,
            ArgumentsBad(_) => CKR_ARGUMENTS_BAD,
            NeedToCreateThreads => CKR_NEED_TO_CREATE_THREADS,
            SlotIdInvalid => CKR_SLOT_ID_INVALID,
            SessionHandleInvalid => CKR_SESSION_HANDLE_INVALID,
            SessionParallelNotSupported => CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            SessionReadOnly => CKR_SESSION_READ_ONLY,
            ObjectHandleInvalid => CKR_OBJECT_HANDLE_INVALID,
            KeyHandleInvalid => CKR_KEY_HANDLE_INVALID,
            KeyFunctionNotPermitted => CKR_KEY_FUNCTION_NOT_PERMITTED,
            KeyTypeInconsistent => CKR_KEY_TYPE_INCONSISTENT,
            MechanismInvalid => CKR_MECHANISM_INVALID,
            MechanismParamInvalid(_) => CKR_MECHANISM_PARAM_INVALID,
            OperationActive => CKR_OPERATION_ACTIVE,
            OperationNotInitialized => CKR_OPERATION_NOT_INITIALIZED,
            BufferTooSmall(_) => CKR_BUFFER_TOO_SMALL,
            DataLenRange => CKR_DATA_LEN_RANGE,
            EncryptedDataLenRange => CKR_ENCRYPTED_DATA_LEN_RANGE,
            EncryptedDataInvalid => CKR_ENCRYPTED_DATA_INVALID,
            SignatureInvalid => CKR_SIGNATURE_INVALID,
            SignatureLenRange => CKR_SIGNATURE_LEN_RANGE,
            AttributeTypeInvalid(_) => CKR_ATTRIBUTE_TYPE_INVALID,
            AttributeValueInvalid(_) => CKR_ATTRIBUTE_VALUE_INVALID,
            AttributeReadOnly(_) => CKR_ATTRIBUTE_READ_ONLY,
            AttributeSensitive(_) => CKR_ATTRIBUTE_SENSITIVE,
            TemplateIncomplete(_) => CKR_TEMPLATE_INCOMPLETE,
            TemplateInconsistent(_) => CKR_TEMPLATE_INCONSISTENT,
            ActionProhibited => CKR_ACTION_PROHIBITED,
            UserAlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            UserNotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            UserTypeInvalid => CKR_USER_TYPE_INVALID,
            PinIncorrect => CKR_PIN_INCORRECT,
            PinLenRange => CKR_PIN_LEN_RANGE,
            PinLocked => CKR_PIN_LOCKED,
            FunctionNotSupported => CKR_FUNCTION_NOT_SUPPORTED,
            FunctionFailed(_) => CKR_FUNCTION_FAILED,
            Device(_) => CKR_DEVICE_ERROR,
            KeyIndigestible => CKR_KEY_INDIGESTIBLE,
            RandomNoRng => CKR_RANDOM_NO_RNG,
            RandomSeedNotSupported => CKR_RANDOM_SEED_NOT_SUPPORTED,
            HostMemory => CKR_HOST_MEMORY,
            General(_) => CKR_GENERAL_ERROR,
        }
    }
}
