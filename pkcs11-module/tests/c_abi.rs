//! The C boundary with bad input: NULL pointers, short buffers, invalid handles,
//! operations out of order, unknown mechanisms and attributes get the spec's CK_RV and
//! never a crash; a forked child starts over. These call the exported functions
//! directly (no tpmd is needed: nothing here reaches the TPM), with a key file whose
//! public area is real and whose private part is never used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ptr::null_mut;
use std::sync::{Mutex, MutexGuard};

use cryptoki_sys::*;
use tpmd_api::keyfile::KeyFileKind;
use tpmd_api::{SoftwareKey, TpmKeyFile, TpmPublic};
use tpmd_pkcs11::ffi::decrypt::*;
use tpmd_pkcs11::ffi::encrypt::*;
use tpmd_pkcs11::ffi::general::*;
use tpmd_pkcs11::ffi::object::*;
use tpmd_pkcs11::ffi::random::*;
use tpmd_pkcs11::ffi::session::*;
use tpmd_pkcs11::ffi::sign::*;
use tpmd_pkcs11::ffi::slot::*;
use tpmd_pkcs11::ffi::unsupported::*;
use tpmd_pkcs11::ffi::verify::*;

static LOCK: Mutex<()> = Mutex::new(());

/// The module initialized over a HOME holding one RSA key file; finalized on drop.
struct Loaded {
    _home: tempfile::TempDir,
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: plain call; NULL is the required argument.
        unsafe { C_Finalize(null_mut()) };
    }
}

/// Made once: RSA key generation is slow in debug builds.
fn fake_key_file() -> &'static str {
    static FILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FILE.get_or_init(make_fake_key_file)
}

fn make_fake_key_file() -> String {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let public = TpmPublic::for_software_key(&SoftwareKey::Rsa(key), false);
    TpmKeyFile {
        kind: KeyFileKind::Loadable,
        empty_auth: true,
        parent: 0x8100_0001,
        public: public.to_tpm2b(),
        private: vec![0, 4, 1, 2, 3, 4],
        secret: None,
        policy: Vec::new(),
        auth_policies: Vec::new(),
        description: None,
    }
    .to_pem()
}

fn load() -> Loaded {
    let lock = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let home = tempfile::tempdir().unwrap();
    let store = home.path().join("data/tpmd/keys");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("k.tpm"), fake_key_file()).unwrap();
    std::env::set_var("HOME", home.path());
    std::env::set_var("XDG_DATA_HOME", home.path().join("data"));
    std::env::set_var("XDG_CONFIG_HOME", home.path().join("config"));
    std::env::set_var("TPMD_BUS_ADDRESS", "unix:path=/nonexistent/tpmd-test-bus");
    // SAFETY: NULL arguments are allowed.
    assert_eq!(unsafe { C_Initialize(null_mut()) }, CKR_OK);
    Loaded {
        _home: home,
        _lock: lock,
    }
}

fn open_session() -> CK_SESSION_HANDLE {
    let mut h = 0;
    // SAFETY: valid out pointer.
    let rv = unsafe { C_OpenSession(1, CKF_SERIAL_SESSION, null_mut(), None, &mut h) };
    assert_eq!(rv, CKR_OK);
    h
}

fn private_key(h: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    let mut class = CKO_PRIVATE_KEY;
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: &mut class as *mut _ as *mut _,
        ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
    }];
    let mut found = [0; 4];
    let mut n = 0;
    // SAFETY: valid template and output arrays of the stated sizes.
    unsafe {
        assert_eq!(C_FindObjectsInit(h, t.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(C_FindObjects(h, found.as_mut_ptr(), 4, &mut n), CKR_OK);
        assert_eq!(C_FindObjectsFinal(h), CKR_OK);
    }
    assert_eq!(n, 1);
    found[0]
}

#[test]
fn calls_before_initialize_and_bad_initialize_args() {
    let _lock = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut n = 0;
    // SAFETY: every pointer is valid or deliberately NULL.
    unsafe {
        assert_eq!(
            C_GetSlotList(0, null_mut(), &mut n),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
        assert_eq!(C_CloseSession(1), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: std::ptr::dangling_mut(),
        };
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_ARGUMENTS_BAD
        );
        args.pReserved = null_mut();
        assert_eq!(C_Initialize(&mut args as *mut _ as *mut _), CKR_OK);
        assert_eq!(
            C_Initialize(&mut args as *mut _ as *mut _),
            CKR_CRYPTOKI_ALREADY_INITIALIZED
        );
        assert_eq!(C_Finalize(std::ptr::dangling_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
    }
}

#[test]
fn function_lists_and_interfaces() {
    let _lock = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: every pointer is valid or deliberately NULL.
    unsafe {
        assert_eq!(C_GetFunctionList(null_mut()), CKR_ARGUMENTS_BAD);
        let mut list: *mut CK_FUNCTION_LIST = null_mut();
        assert_eq!(C_GetFunctionList(&mut list), CKR_OK);
        assert_eq!(((*list).version.major, (*list).version.minor), (2, 40));
        assert!((*list).C_Sign.is_some() && (*list).C_WaitForSlotEvent.is_some());

        let mut n = 0;
        assert_eq!(C_GetInterfaceList(null_mut(), &mut n), CKR_OK);
        assert_eq!(n, 2);
        let mut short = [CK_INTERFACE {
            pInterfaceName: null_mut(),
            pFunctionList: null_mut(),
            flags: 0,
        }];
        n = 1;
        assert_eq!(
            C_GetInterfaceList(short.as_mut_ptr(), &mut n),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(n, 2);

        let mut iface: *mut CK_INTERFACE = null_mut();
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), &mut iface, 0),
            CKR_OK
        );
        let v3 = (*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0;
        assert_eq!((*v3).version.major, 3);
        assert!((*v3).C_LoginUser.is_some() && (*v3).C_MessageVerifyFinal.is_some());
        let mut v240 = CK_VERSION {
            major: 2,
            minor: 40,
        };
        let name = b"PKCS 11\0";
        assert_eq!(
            C_GetInterface(name.as_ptr() as *mut _, &mut v240, &mut iface, 0),
            CKR_OK
        );
        let l = (*iface).pFunctionList as *const CK_FUNCTION_LIST;
        assert_eq!((*l).version.minor, 40);
        assert_eq!(
            C_GetInterface(c"Vendor".as_ptr() as *mut _, null_mut(), &mut iface, 0),
            CKR_ARGUMENTS_BAD
        );
    }
}

#[test]
fn slots_sessions_and_handles() {
    let _m = load();
    // SAFETY: every pointer is valid or deliberately NULL.
    unsafe {
        assert_eq!(C_GetSlotList(0, null_mut(), null_mut()), CKR_ARGUMENTS_BAD);
        let mut n = 0;
        let mut slots = [0; 1];
        assert_eq!(
            C_GetSlotList(0, slots.as_mut_ptr(), &mut n),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(n, 1);
        assert_eq!(C_GetSlotList(0, slots.as_mut_ptr(), &mut n), CKR_OK);
        assert_eq!(slots[0], 1);
        let mut info = std::mem::zeroed::<CK_SLOT_INFO>();
        assert_eq!(C_GetSlotInfo(7, &mut info), CKR_SLOT_ID_INVALID);
        assert_eq!(C_GetSlotInfo(1, null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_GetTokenInfo(1, null_mut()), CKR_ARGUMENTS_BAD);

        let mut mechs = [0; 2];
        n = 2;
        assert_eq!(
            C_GetMechanismList(1, mechs.as_mut_ptr(), &mut n),
            CKR_BUFFER_TOO_SMALL
        );
        assert!(n > 10);
        let mut mi = std::mem::zeroed::<CK_MECHANISM_INFO>();
        assert_eq!(
            C_GetMechanismInfo(1, CKM_AES_CBC, &mut mi),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(C_GetMechanismInfo(1, CKM_RSA_PKCS_PSS, &mut mi), CKR_OK);
        assert_eq!(mi.flags & CKF_SIGN, CKF_SIGN);

        let mut h = 0;
        assert_eq!(
            C_OpenSession(1, 0, null_mut(), None, &mut h),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );
        assert_eq!(
            C_OpenSession(1, CKF_SERIAL_SESSION, null_mut(), None, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_OpenSession(9, CKF_SERIAL_SESSION, null_mut(), None, &mut h),
            CKR_SLOT_ID_INVALID
        );
        assert_eq!(C_CloseSession(4242), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(
            C_FindObjectsInit(4242, null_mut(), 0),
            CKR_SESSION_HANDLE_INVALID
        );
        let h = open_session();
        let mut si = std::mem::zeroed::<CK_SESSION_INFO>();
        assert_eq!(C_GetSessionInfo(h, &mut si), CKR_OK);
        assert_eq!(si.state, CKS_RO_PUBLIC_SESSION);
        // A template with a NULL array but a count.
        assert_eq!(C_FindObjectsInit(h, null_mut(), 3), CKR_ARGUMENTS_BAD);
        let mut found = [0; 2];
        assert_eq!(
            C_FindObjects(h, found.as_mut_ptr(), 2, &mut n),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(C_FindObjectsInit(h, null_mut(), 0), CKR_OK);
        assert_eq!(C_FindObjectsInit(h, null_mut(), 0), CKR_OPERATION_ACTIVE);
        assert_eq!(
            C_FindObjects(h, found.as_mut_ptr(), 2, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(C_FindObjects(h, found.as_mut_ptr(), 2, &mut n), CKR_OK);
        assert_eq!(n, 2, "private and public key object");
        assert_eq!(C_FindObjectsFinal(h), CKR_OK);
        assert_eq!(C_FindObjectsFinal(h), CKR_OPERATION_NOT_INITIALIZED);

        // Login: only CKU_USER exists; logout needs a login.
        assert_eq!(C_Login(h, CKU_SO, null_mut(), 0), CKR_USER_TYPE_INVALID);
        assert_eq!(C_Login(h, CKU_USER, null_mut(), 4), CKR_ARGUMENTS_BAD);
        assert_eq!(C_Logout(h), CKR_USER_NOT_LOGGED_IN);
        // Writes need a read/write session.
        let mut class = CKO_CERTIFICATE;
        let mut t = [CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: &mut class as *mut _ as *mut _,
            ulValueLen: 8,
        }];
        let mut obj = 0;
        assert_eq!(
            C_CreateObject(h, t.as_mut_ptr(), 1, &mut obj),
            CKR_SESSION_READ_ONLY
        );
        assert_eq!(C_DestroyObject(h, 99_999), CKR_SESSION_READ_ONLY);
        // Encryption and verification need their init; RSA encryption is single-part.
        let mut len: CK_ULONG = 0;
        assert_eq!(
            C_Encrypt(h, null_mut(), 0, null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            C_Encrypt(h, null_mut(), 0, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_EncryptUpdate(h, null_mut(), 0, null_mut(), &mut len),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            C_Verify(h, null_mut(), 0, null_mut(), 0),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(C_VerifyFinal(h, null_mut(), 4), CKR_ARGUMENTS_BAD);
        // Random bytes: nothing asked is nothing done; NULL with a length is refused;
        // the TPM's generator takes no seed.
        assert_eq!(C_GenerateRandom(h, null_mut(), 0), CKR_OK);
        assert_eq!(C_GenerateRandom(h, null_mut(), 4), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_GenerateRandom(99_999, null_mut(), 0),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(
            C_SeedRandom(h, null_mut(), 0),
            CKR_RANDOM_SEED_NOT_SUPPORTED
        );
        assert_eq!(C_SeedRandom(h, null_mut(), 8), CKR_ARGUMENTS_BAD);
        // C_SetPIN: PINs are read first; changing one needs a read/write session.
        assert_eq!(C_SetPIN(h, null_mut(), 4, null_mut(), 0), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_SetPIN(h, b"1".as_ptr() as *mut _, 1, b"2".as_ptr() as *mut _, 1),
            CKR_SESSION_READ_ONLY
        );
        // A context-specific login needs the user logged in, and an operation.
        assert_eq!(
            C_Login(h, CKU_CONTEXT_SPECIFIC, b"1234".as_ptr() as *mut _, 4),
            CKR_USER_NOT_LOGGED_IN
        );
        assert_eq!(C_CloseSession(h), CKR_OK);
        assert_eq!(C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);
    }
}

#[test]
fn attributes_with_bad_handles_types_and_buffers() {
    let _m = load();
    let h = open_session();
    let key = private_key(h);
    // SAFETY: every pointer is valid or deliberately NULL, lengths match the buffers.
    unsafe {
        let mut t = [CK_ATTRIBUTE {
            type_: CKA_MODULUS,
            pValue: null_mut(),
            ulValueLen: 0,
        }];
        assert_eq!(
            C_GetAttributeValue(h, 0, t.as_mut_ptr(), 1),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            C_GetAttributeValue(h, 77_777, t.as_mut_ptr(), 1),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            C_GetAttributeValue(h, key, null_mut(), 1),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(C_GetAttributeValue(h, key, t.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(t[0].ulValueLen, 256);
        let mut small = [0u8; 8];
        t[0].pValue = small.as_mut_ptr() as *mut _;
        t[0].ulValueLen = 8;
        assert_eq!(
            C_GetAttributeValue(h, key, t.as_mut_ptr(), 1),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);

        let mut buf = [0u8; 512];
        let mut t = [
            CK_ATTRIBUTE {
                type_: CKA_PRIVATE_EXPONENT,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: 0x7fff_0001,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: buf.as_mut_ptr() as *mut _,
                ulValueLen: 512,
            },
        ];
        let rv = C_GetAttributeValue(h, key, t.as_mut_ptr(), 3);
        assert!(
            rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID,
            "{rv:#x}"
        );
        assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        // The valid attribute in the same call is still returned.
        assert_eq!(&buf[..t[2].ulValueLen as usize], b"k");
        let mut only_sensitive = [CK_ATTRIBUTE {
            type_: CKA_PRIME_1,
            pValue: null_mut(),
            ulValueLen: 0,
        }];
        assert_eq!(
            C_GetAttributeValue(h, key, only_sensitive.as_mut_ptr(), 1),
            CKR_ATTRIBUTE_SENSITIVE
        );
    }
}

#[test]
fn sign_and_decrypt_out_of_order_and_short_buffers() {
    let _m = load();
    let h = open_session();
    let key = private_key(h);
    let mut mech = CK_MECHANISM {
        mechanism: CKM_SHA256_RSA_PKCS,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let data = *b"data";
    let mut sig = [0u8; 512];
    let mut len: CK_ULONG = 0;
    // SAFETY: every pointer is valid or deliberately NULL, lengths match the buffers.
    unsafe {
        let d = data.as_ptr() as *mut u8;
        assert_eq!(
            C_Sign(h, d, 4, sig.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            C_SignFinal(h, null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            C_SignInit(h, null_mut(), key),
            CKR_OK,
            "NULL mechanism cancels"
        );
        assert_eq!(C_SignInit(h, &mut mech, 31_337), CKR_KEY_HANDLE_INVALID);
        let mut unknown = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(C_SignInit(h, &mut unknown, key), CKR_MECHANISM_INVALID);
        let mut ecdsa = CK_MECHANISM {
            mechanism: CKM_ECDSA,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(C_SignInit(h, &mut ecdsa, key), CKR_KEY_TYPE_INCONSISTENT);
        let mut pss_without_params = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_PSS,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(
            C_SignInit(h, &mut pss_without_params, key),
            CKR_MECHANISM_PARAM_INVALID
        );

        assert_eq!(C_SignInit(h, &mut mech, key), CKR_OK);
        assert_eq!(C_SignInit(h, &mut mech, key), CKR_OPERATION_ACTIVE);
        // Length query, then a short buffer: both keep the operation and say 256.
        assert_eq!(C_Sign(h, d, 4, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 256);
        len = 10;
        assert_eq!(
            C_Sign(h, d, 4, sig.as_mut_ptr(), &mut len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 256);
        assert_eq!(
            C_Sign(h, d, 4, sig.as_mut_ptr(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        // That error ended the operation.
        assert_eq!(
            C_Sign(h, d, 4, null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(C_SignInit(h, &mut mech, key), CKR_OK);
        assert_eq!(C_SignUpdate(h, null_mut(), 4), CKR_ARGUMENTS_BAD);
        assert_eq!(C_SignUpdate(h, d, 4), CKR_OPERATION_NOT_INITIALIZED);

        let mut rsa_pkcs = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        let mut plain = [0u8; 256];
        assert_eq!(C_DecryptInit(h, &mut rsa_pkcs, key), CKR_OK);
        len = 256;
        assert_eq!(
            C_Decrypt(h, d, 4, plain.as_mut_ptr(), &mut len),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
        assert_eq!(
            C_Decrypt(h, d, 4, plain.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            C_DecryptUpdate(h, d, 4, null_mut(), null_mut()),
            CKR_FUNCTION_NOT_SUPPORTED
        );

        // Verification and encryption run here with the public key: no tpmd needed.
        let mut sha3 = CK_MECHANISM {
            mechanism: CKM_SHA3_256_RSA_PKCS,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(C_VerifyInit(h, &mut sha3, key), CKR_MECHANISM_INVALID);
        assert_eq!(C_EncryptInit(h, &mut sha3, key), CKR_MECHANISM_INVALID);
        assert_eq!(C_VerifyInit(h, &mut ecdsa, key), CKR_KEY_TYPE_INCONSISTENT);
        assert_eq!(C_VerifyInit(h, &mut mech, 31_337), CKR_KEY_HANDLE_INVALID);
        assert_eq!(C_VerifyInit(h, &mut mech, key), CKR_OK);
        assert_eq!(C_VerifyInit(h, &mut mech, key), CKR_OPERATION_ACTIVE);
        assert_eq!(
            C_Verify(h, d, 4, sig.as_mut_ptr(), 255),
            CKR_SIGNATURE_LEN_RANGE
        );
        assert_eq!(
            C_Verify(h, d, 4, sig.as_mut_ptr(), 256),
            CKR_OPERATION_NOT_INITIALIZED,
            "a failed C_Verify ends the operation"
        );
        assert_eq!(C_VerifyInit(h, &mut mech, key), CKR_OK);
        assert_eq!(C_VerifyUpdate(h, d, 4), CKR_OK);
        assert_eq!(
            C_VerifyFinal(h, sig.as_mut_ptr(), 256),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(C_VerifyInit(h, &mut mech, key), CKR_OK);
        assert_eq!(C_VerifyUpdate(h, d, 4), CKR_OK);
        assert_eq!(
            C_Verify(h, d, 4, sig.as_mut_ptr(), 256),
            CKR_OPERATION_ACTIVE,
            "C_Verify after C_VerifyUpdate is out of order"
        );

        let mut cipher = [0u8; 256];
        assert_eq!(C_EncryptInit(h, &mut mech, key), CKR_MECHANISM_INVALID);
        assert_eq!(C_EncryptInit(h, &mut rsa_pkcs, key), CKR_OK);
        assert_eq!(C_Encrypt(h, d, 4, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 256);
        len = 100;
        assert_eq!(
            C_Encrypt(h, d, 4, cipher.as_mut_ptr(), &mut len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 256);
        assert_eq!(C_Encrypt(h, d, 4, cipher.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, 256);
        assert_ne!(cipher, [0u8; 256]);
        let long = [7u8; 246];
        assert_eq!(C_EncryptInit(h, &mut rsa_pkcs, key), CKR_OK);
        assert_eq!(
            C_Encrypt(
                h,
                long.as_ptr() as *mut u8,
                246,
                cipher.as_mut_ptr(),
                &mut len
            ),
            CKR_DATA_LEN_RANGE
        );
        let mut oaep_params = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA1,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: null_mut(),
            ulSourceDataLen: 0,
        };
        let mut oaep = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_OAEP,
            pParameter: &mut oaep_params as *mut _ as *mut _,
            ulParameterLen: std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>() as CK_ULONG,
        };
        assert_eq!(
            C_EncryptInit(h, &mut oaep, key),
            CKR_MECHANISM_PARAM_INVALID,
            "MGF1 of another hash"
        );
        let mut labelled = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: b"abc".as_ptr() as *mut _,
            ulSourceDataLen: 3,
        };
        oaep.pParameter = &mut labelled as *mut _ as *mut _;
        assert_eq!(C_EncryptInit(h, &mut oaep, key), CKR_OK);
        len = 256;
        assert_eq!(C_Encrypt(h, d, 4, cipher.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, 256);
    }
}

#[test]
fn a_forked_child_initializes_afresh() {
    let _m = load();
    let h = open_session();
    // SAFETY: the child only calls this module and then _exit()s.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let mut n = 0;
            // SAFETY: valid pointers.
            let code = unsafe {
                let before = C_GetSlotList(0, null_mut(), &mut n);
                let stale = C_CloseSession(h);
                let init = C_Initialize(null_mut());
                let after = C_GetSlotList(0, null_mut(), &mut n);
                let fresh = open_session_rv();
                if before == CKR_CRYPTOKI_NOT_INITIALIZED
                    && stale == CKR_CRYPTOKI_NOT_INITIALIZED
                    && init == CKR_OK
                    && after == CKR_OK
                    && fresh == CKR_OK
                {
                    0
                } else {
                    1
                }
            };
            // SAFETY: leaving the child without running the parent's atexit handlers.
            unsafe { nix::libc::_exit(code) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            // The parent's state is untouched.
            // SAFETY: valid handle.
            assert_eq!(unsafe { C_CloseSession(h) }, CKR_OK);
        }
    }
}

fn open_session_rv() -> CK_RV {
    let mut h = 0;
    // SAFETY: valid out pointer.
    unsafe { C_OpenSession(1, CKF_SERIAL_SESSION, null_mut(), None, &mut h) }
}
