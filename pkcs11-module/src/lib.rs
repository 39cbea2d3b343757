//! libtpmd_pkcs11.so
